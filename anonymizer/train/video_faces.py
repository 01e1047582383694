"""Aligned face crops from real videos: the deepfake detector's real faces from video, and the faces its
self-blends and swaps are made of (issue 34, models/deepfake.md); and from still photos of generated people.

    python -m anonymizer.train.video_faces --videos ../shared/data/videos-real --out runs/video_faces.npz
    python -m anonymizer.train.video_faces --stills ../shared/data/donors --out runs/generated_faces.npz

Every ``--every``-th frame of each clip: our detector's faces (score >= :data:`MIN_SCORE`, at least
:data:`MIN_HEIGHT` px tall), each aligned by its five landmarks onto the classifier's crop as ``anonymizer
audit`` aligns faces (:func:`~anonymizer.pipeline.deepfake.align_for_deepfake`), with the landmarks in crop
pixels, its clip and its person (:func:`person_of`). Written to ``--out`` (.npz): ``crops`` uint8 [N, 128,
128, 3], ``landmarks`` float32 [N, 5, 2], ``clips``, ``persons`` (str [N]) and ``frames`` (int [N]).
Deterministic: the same clips give the same file.

:func:`held_out` splits by person: five MEAD actors and LRS3 speakers (:data:`HELD_OUT_PREFIXES`) are never
trained on, so that the dev numbers are on people the detector never saw. With ``--stills``
every photo under the folder is one person (its path), a fixed tenth held out by a digest of the path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: faces kept: detector score and height in pixels
MIN_SCORE, MIN_HEIGHT = 0.5, 48
#: clips of one person (videos-real/SOURCE.md): stem -> the person's key
SAME_PERSON = {"retalking_face_3": "sadtalker_ref_video_WDA_AlexandriaOcasioCortez_000"}
#: the held-out people: half the MEAD actors and LRS3 speakers, whose names carry their identity (the other
#: sources may show one person in several clips unannounced, so none of them is held out)
HELD_OUT_PREFIXES = (
    "spectre_MEAD_M030_",
    "spectre_MEAD_W023_",
    "spectre_MEAD_W040_",
    "spectre_LRS3_0Fi83BHQsMA_",
    "spectre_LRS3_QoT0S2vu9m4_",
)


def person_of(clip: str) -> str:
    """The person key of a clip (its file stem; clips of one person share one, :data:`SAME_PERSON`)."""
    stem = Path(clip).stem
    return SAME_PERSON.get(stem, stem)


def held_out(persons: np.ndarray) -> np.ndarray:
    """bool [N]: faces of held-out people (:data:`HELD_OUT_PREFIXES`; for stills, a tenth by path)."""
    import hashlib

    def out(p: str) -> bool:
        if "/" in p:  # a still photo: its path
            return hashlib.sha256(p.encode()).digest()[0] < 26
        return p.startswith(HELD_OUT_PREFIXES)

    return np.array([out(str(p)) for p in persons], bool)


def still_faces(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(crops, landmarks in crop pixels) of the best face of a photo (none when none is kept)."""
    from ..media.image import load_image

    return _aligned(load_image(path).rgb, best_only=True)


def _aligned(rgb: np.ndarray, best_only: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from ..nn.deepfake import DEEPFAKE_SIZE
    from ..nn.surrogate import crop_template
    from ..ops.align import similarity_transform
    from ..pipeline.deepfake import align_for_deepfake
    from ..pipeline.models import get_finder

    tpl = crop_template(DEEPFAKE_SIZE)
    crops, lms = [], []
    faces = [f for f in get_finder(threshold=MIN_SCORE, upscale=0.0).find(rgb) if f.score >= MIN_SCORE]
    for face in faces[:1] if best_only else faces:
        if face.height < MIN_HEIGHT:
            continue
        lm = np.asarray(face.landmarks, np.float64)
        m = similarity_transform(lm, tpl)
        crops.append(align_for_deepfake(rgb, face))
        lms.append((lm @ m[:, :2].T + m[:, 2]).astype(np.float32))
    return crops, lms


def clip_faces(path: Path, every: int) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """(crops, landmarks in crop pixels, frame indices) of the kept faces of every ``every``-th frame."""
    from ..media.video import read_frames
    from ..ops.rotation import upright

    crops, lms, frames = [], [], []
    for i, stored, rotation in read_frames(path):
        if i % every:
            continue
        c, lm = _aligned(upright(stored, rotation))
        crops += c
        lms += lm
        frames += [i] * len(c)
    return crops, lms, frames


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", type=Path, help="a folder of real videos, e.g. ../shared/data/videos-real")
    src.add_argument("--stills", type=Path, help="a folder (searched whole) of photos, e.g. ../shared/data/donors")
    ap.add_argument("--out", type=Path, default=Path("runs/video_faces.npz"), help="default: %(default)s")
    ap.add_argument("--every", type=int, default=6, help="every K-th frame (default: %(default)s)")
    args = ap.parse_args(argv)
    from tqdm import tqdm

    from ..nn.runtime import configure_runtime

    configure_runtime(None)
    root = args.videos or args.stills
    kinds = (".mp4", ".mov", ".mkv", ".avi") if args.videos else (".jpg", ".jpeg", ".png", ".webp")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in kinds)
    if not files:
        raise SystemExit(f"nothing to read in {root}")
    crops: list[np.ndarray] = []
    lms: list[np.ndarray] = []
    names: list[str] = []
    frames: list[int] = []
    for f in tqdm(files, desc="clips" if args.videos else "photos", unit="file"):
        c, lm, fr = clip_faces(f, args.every) if args.videos else (*still_faces(f), [0])
        crops += c
        lms += lm
        frames += fr[: len(c)] if not args.videos else fr
        names += [f.relative_to(root).as_posix()] * len(c)
    clip_names = np.array(names)
    persons = np.array([person_of(n) for n in names] if args.videos else names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part.npz")
    np.savez_compressed(
        tmp,
        crops=np.stack(crops),
        landmarks=np.stack(lms),
        clips=clip_names,
        persons=persons,
        frames=np.array(frames, np.int64),
    )
    tmp.replace(args.out)
    out = held_out(persons)
    print(
        f"{len(crops)} faces from {len(files)} files, {len(set(persons))} people; held out: {int(out.sum())} faces "
        f"of {len(set(persons[out]))} people -> {args.out}"
    )


if __name__ == "__main__":
    main()
