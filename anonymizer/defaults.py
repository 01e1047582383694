"""Default settings, chosen by measurement (README "Measured"); kept free of heavy imports so that the
CLI's --help and --version start fast."""

from __future__ import annotations

#: what replaces a face unless told otherwise: an opaque fill (the surrogate generator does not yet paint faces
#: a user would publish; README "Surrogate faces")
DEFAULT_METHOD = "solid"
#: The covers of :mod:`anonymizer.ops.replace`, and every way to replace a face (with a generated surrogate)
COVER_METHODS = ("solid", "pixelate", "blur")
ANONYMIZE_METHODS = (*COVER_METHODS, "surrogate")
#: What `anonymize` can cover, and the mask shapes around a face (:mod:`anonymizer.ops.masks`)
TARGETS = ("face", "person", "plate")
SHAPES = ("ellipse", "box")
#: Mask R-CNN person score threshold (models/person_maskrcnn.md)
DEFAULT_PERSON_THRESHOLD = 0.5
#: licence plates (models/plates.md, benchmarks/plates.py): the score a plate needs, how much its box (fitted
#: by the plate refiner, models/plate_refiner.md) grows before it is covered, and the enlargement of the second
#: pass for small, distant plates
DEFAULT_PLATE_THRESHOLD = 0.3
PLATE_MASK_SCALE = 1.5
PLATE_UPSCALE = 2.0
#: photos: plates are also looked for in the image reduced by each of these, where no plate was found yet (near
#: plates, too large for the full-size pass, and some the full-size pass misses; models/plates.md)
PLATE_REDUCED: tuple[float, ...] = (0.5, 0.75)
#: ... and at half the smallest of those, and half that, while the reduced image's longer side keeps at least
#: PLATE_REDUCED_MIN_SIDE px: images of 1280 px and more (a 1920-px photo also at 0.25x: near plates up to about
#: 600 px wide; the first 25 held-out photos enlarged 3x: widest plates covered 80.0% -> 88.0%). Videos too
PLATE_REDUCED_MIN_SIDE = 320
#: videos: plates are found at the frame's own size (the enlarged pass would cost more than the rest)
PLATE_VIDEO_UPSCALE = 0.0
#: videos: the reduced pass for near plates (a dashcam's car ahead), one scale to keep the cost down
PLATE_VIDEO_REDUCED: tuple[float, ...] = (0.5,)

#: the registered face detectors `anonymize` can run: the float CenterFace, and the same network in int8
#: (about 3x faster on a CPU, the same faces covered on our crowd set, a little more collateral:
#: models/centerface_int8.md). Photos keep the float one (there the int8 one gains time but no faces, for
#: 0.8-1.4 points of collateral); videos run the int8 one on more frames, which covers more faces (below)
FACE_DETECTORS = ("centerface", "centerface_int8")
DEFAULT_DETECTOR = "centerface"
DEFAULT_VIDEO_DETECTOR = "centerface_int8"

#: photos: benchmarks/coverage.py
DEFAULT_THRESHOLD = 0.2
DEFAULT_NMS_IOU = 0.3
DEFAULT_MASK_SCALE = 1.5
DEFAULT_FEATHER = 0.05
DEFAULT_UPSCALE = 2.0
#: the threshold is for faces SMALL_FACE to LARGE_FACE px tall; smaller ones need it x SMALL_FACE_FACTOR (in
#: crowds that is where identities leak, and a false one costs few pixels), larger ones x LARGE_FACE_FACTOR,
#: at most LARGE_FACE_CAP (a large false face is a blob over a torso or a sign)
SMALL_FACE, SMALL_FACE_FACTOR = 32, 0.6
LARGE_FACE, LARGE_FACE_FACTOR, LARGE_FACE_CAP = 64, 2.0, 0.5
#: masks of faces under SMALL_FACE px tall are scaled this much more: their boxes are off by a pixel or two
#: more often, and a pixel is a large share of a small face
SMALL_MASK_EXTRA = 0.2
#: the rule in words, for help texts
THRESHOLD_RULE = (
    f"for faces {SMALL_FACE}-{LARGE_FACE - 1} px tall; smaller faces need {SMALL_FACE_FACTOR:g} of it, "
    f"faces of {LARGE_FACE} px and more {LARGE_FACE_FACTOR:g}x it (at most {LARGE_FACE_CAP:g})"
)

#: videos: benchmarks/video.py. The int8 detector on every 3rd frame (2026-12-07, 315-frame 720p clip): 4.02x
#: deface's frames/s, 99.5% of faces covered, 88 of the 3,463 faces the float detector sees on every frame
#: left showing for their frame; the float one on every 5th (the default until then): 3.27x, 98.9%, 161
DEFAULT_DETECT_EVERY = 3
#: videos: the targets whose detection frames keep their faint candidates for the frames in between to look at
#: again (CoverPlanner's ``watch``). Plates (benchmarks/plates.py --video, 2026-12-07): 182 -> 66 of 4,183
#: every-frame plates left uncovered, plate finder 15.3 -> 25.3 ms a frame. Not faces by default
#: (benchmarks/video.py, same day): 88 -> 45 every-frame faces showing, but 3.90x -> 2.65x deface's frames/s
#: (13 faint candidates a frame in a crowd) and collateral 2.36% -> 3.21%
VIDEO_WATCH: tuple[str, ...] = ("plate",)
#: videos: plates are detected on every PLATE_DETECT_EVERY-th frame, whatever the faces' cadence (watched, as
#: above, when it is more than 1). All 65 held-out plate photos as pans (benchmarks/plates.py --video,
#: 2026-12-07): every frame leaves none of the 4,183 plates the every-frame finder sees uncovered, for 45.3 ms
#: of plate detection a 640x360 frame; every 3rd frame, watched, 66 uncovered for 25.3 ms. On the 720p crowd
#: clip of benchmarks/video.py watching cost as much as detecting (many faint candidates): detection 84 s every
#: frame, 80 s every 3rd watched, 37 s every 3rd unwatched (faces alone 12 s)
PLATE_DETECT_EVERY = 1
DEFAULT_HOLD_SECONDS = 0.5
DEFAULT_VIDEO_THRESHOLD = 0.2
#: videos: persons are segmented at least this often (benchmarks/video.py --persons); a person track starts
#: from a detection scoring DEFAULT_PERSON_THRESHOLD and carries on through detections down to
#: PERSON_CARRY_THRESHOLD (a person the segmenter loses for a frame stays covered; no new blob starts low)
PERSON_DETECT_EVERY = 3
PERSON_CARRY_THRESHOLD = 0.3
