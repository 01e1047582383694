"""Paint surrogate faces: align each face onto the generator's crop, generate a face for its code, warp
it back and blend it into the photo.

Each face gets the code of its track (a photo's faces are tracks 0, 1, ... in detection order; a video's
tracks keep their number), derived from the password by :class:`anonymizer.vault.surrogate.SurrogateSeed`,
so the same password and input give the same output and different people never share a surrogate.
When the generator has a palette (codes trained to be mutually different people), a face's code is a
palette row its track gets from the seed (:meth:`~anonymizer.vault.surrogate.SurrogateSeed.palette_index`,
drawn by the generator's row weights when it has them), painted by the network that row names (an
ensemble's, :class:`~anonymizer.nn.surrogate.SurrogateGenerator`).

Identity check: each track has :data:`ATTEMPTS` candidate rows of its own, and takes the first whose
surrogate our IdentityNet (the check's own weights, :data:`CHECK_WEIGHTS`) puts further than
:data:`CHECK_DISTANCE` from the original face (the farthest when none is), so the rare surrogate that
still resembles the person it replaces is swapped for the next candidate. The decision depends only on
the password, the photo and the weights, so the same password and input still give the same output; in
a video it is made where a track first appears and the track keeps it.

Large faces (more than 1.5x the crop) are generated at the crop's size and enlarged 4x by the SRGAN
model before being warped back. The generated face's colour statistics are matched to the original face
region's (:func:`match_colour`), so lighting and greyscale photos stay consistent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import lru_cache

import cv2
import numpy as np
import torch

from ..errors import InputError
from ..nn.recognizers import IdentityNetRecognizer, Recognizer, distance
from ..nn.surrogate import CODE_DIM, SURROGATE_SIZE, SurrogateGenerator, crop_template, face_mask, landmark_heatmaps
from ..ops.align import similarity_transform
from ..ops.checks import require_rgb
from ..ops.masks import box_coverage
from ..ops.replace import composite
from ..types import Face, Region
from ..vault.surrogate import SurrogateSeed

#: Faces whose crop would be enlarged more than this go through the 4x SRGAN before being warped back.
SR_ABOVE = 1.5
#: The surrogate must cover at least this share of the central half of the face box (normally all of
#: it); a face it covers less (a profile, landmarks gone astray, a face mostly outside the photo) is
#: covered solid as well: a surrogate never leaves part of a face showing.
COVER_MIN = 0.8
#: Candidate codes per track for the identity check (see :meth:`SurrogatePainter.paint`).
ATTEMPTS = 4
#: The identity check takes a track's first candidate whose surrogate the check's IdentityNet puts further
#: than this from the original face. Chosen on training faces kept out of the check's fine-tuning: the
#: lowest threshold at which every one of them was de-identified for dlib (models/surrogate.md, "Stage 10").
CHECK_DISTANCE = 0.65
#: The check's weights (declared in anonymizer/weights.py): IdentityNet fine-tuned on faces and their
#: painted surrogates, so that it measures face-to-surrogate distances closer to dlib's than the audit's
#: IdentityNet does (models/identity_net.md, "The surrogate check").
CHECK_WEIGHTS = "identity_check"


@lru_cache(maxsize=1)
def check_recognizer() -> Recognizer:
    """The identity check's IdentityNet (:data:`CHECK_WEIGHTS`), loaded once per process."""
    return IdentityNetRecognizer(weights=CHECK_WEIGHTS)


class SurrogatePainter:
    """Loads the generator once; :meth:`paint` is safe to call from several threads."""

    def __init__(
        self,
        *,
        weights: str | None = "default",
        generator: torch.nn.Module | None = None,
        super_resolution: str | None = "srgan",
        identity_check: bool = True,
    ) -> None:
        if generator is None:
            from ..nn.surrogate import surrogate

            generator = surrogate(weights=weights)
        self.gen = generator.eval()
        self.palette: torch.Tensor | None = None
        self.row_weights: np.ndarray | None = None
        self.row_nets: np.ndarray | None = None
        if isinstance(generator, SurrogateGenerator) and generator.has_palette:
            self.palette, self.row_weights = generator.palette.clone(), generator.row_weights
            self.row_nets = generator.row_nets
        self.sr = super_resolution
        self.check: Recognizer | None = check_recognizer() if identity_check else None
        self._lock = threading.Lock()

    def paint(
        self,
        rgb: np.ndarray,
        faces: Sequence[Face],
        seed: SurrogateSeed,
        tracks: Sequence[int] | None = None,
        choices: dict[int, int] | None = None,
    ) -> tuple[np.ndarray, tuple[Region, ...], np.ndarray]:
        """(new image, regions, changed-pixel mask); the input is not modified. Faces without five
        landmarks cannot be aligned and raise InputError. A face the surrogate covers poorly (see
        :data:`COVER_MIN`) is covered solid too (an extra region with shape "ellipse").

        With the identity check on, each track's code is the first of its :data:`ATTEMPTS` candidates whose
        surrogate the check's IdentityNet puts more than :data:`CHECK_DISTANCE` from the original face (else the
        farthest). ``choices`` (track -> the candidate taken) remembers the decision: a video passes one
        dict for all its frames, so a track is checked once, where it first appears, and keeps its
        surrogate (the caller keeps one such dict to one thread). Without the check every track takes its
        first candidate."""
        require_rgb(rgb)
        tracks = list(range(len(faces))) if tracks is None else list(tracks)
        if len(tracks) != len(faces):
            raise InputError(f"{len(faces)} faces but {len(tracks)} track numbers")
        h, w = rgb.shape[:2]
        out = rgb.copy()
        changed = np.zeros((h, w), bool)
        regions: list[Region] = []
        for face, track in zip(faces, tracks, strict=True):
            out, more = self._paint_one(rgb, out, changed, face, int(track), seed, choices)
            regions.extend(more)
        return out, tuple(regions), changed

    def _paint_one(
        self,
        rgb: np.ndarray,
        out: np.ndarray,
        changed: np.ndarray,
        face: Face,
        track: int,
        seed: SurrogateSeed,
        choices: dict[int, int] | None,
    ) -> tuple[np.ndarray, list[Region]]:
        """One face of :meth:`paint`: (``out`` painted, possibly a new array, its regions); ``changed`` is
        updated in place."""
        from .enhance import enhance_array
        from .photo import cover_faces

        h, w = rgb.shape[:2]
        regions: list[Region] = []
        lm = np.asarray(face.landmarks, np.float64)
        if lm.shape != (5, 2):
            raise InputError("a surrogate needs the face's five landmarks")
        crop, lm_c, m = align_to_crop(rgb, lm)
        lm_crop = torch.from_numpy(lm_c)[None]
        mask = face_mask(lm_crop)
        alpha = mask[0, 0].numpy()
        inv = cv2.invertAffineTransform(m)
        enlarge = self.sr is not None and 1.0 / _scale(m) > SR_ABOVE
        if enlarge:
            inv = inv @ np.diag([0.25, 0.25, 1.0])  # the SRGAN makes the crop 4x larger
            alpha = cv2.resize(alpha, (4 * SURROGATE_SIZE, 4 * SURROGATE_SIZE), interpolation=cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ys, xs = np.nonzero(a > 0)
        if len(xs):
            x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            win = (slice(y1, y2), slice(x1, x2))
            x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255.0)
            heat = landmark_heatmaps(lm_crop)
            inside = mask[0, 0].numpy() > 0.5
            below = out[win].copy()

            def put(attempt: int) -> None:
                """Paint candidate ``attempt`` of this track into ``out`` (over ``below``)."""
                code, net = self.candidate(seed, int(track), attempt)
                with self._lock, torch.inference_mode():
                    painted = self.gen(x, mask, heat, code, net)[0] if net else self.gen(x, mask, heat, code)[0]
                gen_rgb = match_colour(painted.permute(1, 2, 0).numpy() * 255.0, crop, inside)
                if enlarge:
                    gen_rgb = enhance_array(gen_rgb, model=self.sr)  # type: ignore[arg-type]
                back = cv2.warpAffine(gen_rgb, inv, (x2, y2), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                out[win] = composite(below, back[win], a[win])

            self._choose(put, rgb, out, face, int(track), choices)
            changed[win] |= a[win] > 0
            regions.append(Region(face=face, box=(x1, y1, x2, y2), shape="surrogate"))
        if box_coverage(a, face.box) < COVER_MIN:
            out, more, more_mask = cover_faces(out, [face], method="solid")
            regions.extend(more)
            changed |= more_mask
        return out, regions

    def _choose(
        self,
        put: Callable[[int], None],
        rgb: np.ndarray,
        out: np.ndarray,
        face: Face,
        track: int,
        choices: dict[int, int] | None,
    ) -> None:
        """Leave ``out`` painted with the track's chosen candidate (see :meth:`paint`)."""
        if choices is not None and track in choices:
            put(choices[track])
            return
        if self.check is None:
            put(0)
            return
        with self._lock:
            ref = self.check.embed(rgb, face)
        far, best = -1.0, 0
        for attempt in range(ATTEMPTS):
            put(attempt)
            with self._lock:
                d = distance(ref, self.check.embed(out, face))
            if d > CHECK_DISTANCE:
                best = attempt
                break
            if d > far:
                far, best = d, attempt
        else:
            if best != ATTEMPTS - 1:
                put(best)
        if choices is not None:
            choices[track] = best

    def code(self, seed: SurrogateSeed, track: int, attempt: int = 0) -> torch.Tensor:
        """The code (1, CODE_DIM) of candidate ``attempt`` of ``track`` (see :meth:`candidate`)."""
        return self.candidate(seed, track, attempt)[0]

    def candidate_row(self, seed: SurrogateSeed, track: int, attempt: int = 0) -> int | None:
        """The palette row of candidate ``attempt`` (0 .. ATTEMPTS-1) of ``track``: the seed's
        (t * ATTEMPTS + k)-th row (so no two candidates of one seed share a row), or None when the
        generator has no palette or the seed no such row (see :meth:`candidate`)."""
        if not 0 <= attempt < ATTEMPTS:
            raise InputError(f"attempt must be 0 .. {ATTEMPTS - 1}, got {attempt}")
        if self.palette is None:
            return None
        return seed.palette_index(track * ATTEMPTS + attempt, len(self.palette), self.row_weights)

    def candidate(self, seed: SurrogateSeed, track: int, attempt: int = 0) -> tuple[torch.Tensor, int]:
        """The code (1, CODE_DIM) of candidate ``attempt`` (0 .. ATTEMPTS-1) of ``track`` and the network that
        paints it (0 but for an ensemble's rows): the palette row :meth:`candidate_row` names, else the
        seed's standard-normal code number t * ATTEMPTS + k."""
        if (row := self.candidate_row(seed, track, attempt)) is not None:
            return self.palette[row][None], 0 if self.row_nets is None else int(self.row_nets[row])  # type: ignore[index]
        return torch.from_numpy(seed.code(track * ATTEMPTS + attempt, CODE_DIM))[None], 0


def paint_crops(
    crops: np.ndarray,
    lms: np.ndarray,
    codes: np.ndarray,
    *,
    generator: torch.nn.Module | None = None,
    super_resolution: str | None = "srgan",
    batch: int = 32,
    nets: np.ndarray | None = None,
) -> np.ndarray:
    """Surrogates painted straight into aligned crops (N, S, S, 3) uint8 whose landmarks (N, 5, 2) sit near
    :func:`crop_template` (S): each crop is reduced to the generator's size, painted with its code (N,
    CODE_DIM) by its network (``nets`` (N,), an ensemble's; None: all 0), colour-matched, enlarged back
    (4x SRGAN, then to S, as :meth:`SurrogatePainter.paint` does for large faces) and blended in through
    the face mask. Used to train and test the deepfake classifier
    on our own surrogates without the photo round trip."""
    if generator is None:
        from ..nn.surrogate import surrogate

        generator = surrogate()
    n, size = len(crops), crops.shape[1]
    f = SURROGATE_SIZE / size
    small = np.stack([cv2.resize(c, (SURROGATE_SIZE, SURROGATE_SIZE), interpolation=cv2.INTER_AREA) for c in crops])
    lm_small = torch.from_numpy((lms * f).astype(np.float32))
    mask = face_mask(lm_small)
    out = crops.copy()
    big_alpha = face_mask(torch.from_numpy(lms.astype(np.float32)), size=size)[:, 0].numpy()
    for k in range(0, n, batch):
        sl = slice(k, k + batch)
        x = torch.from_numpy(small[sl]).permute(0, 3, 1, 2).float().div(255.0)
        with torch.inference_mode():
            args = (x, mask[sl], landmark_heatmaps(lm_small[sl]), torch.from_numpy(codes[sl]).float())
            painted = (
                generator.eval()(*args) if nets is None else generator.eval()(*args, torch.from_numpy(nets[sl]).long())
            )
        for j, img in enumerate(painted.permute(0, 2, 3, 1).numpy() * 255.0):
            i = k + j
            gen = match_colour(img, small[i], mask[i, 0].numpy() > 0.5)
            if super_resolution is not None:
                from .enhance import enhance_array

                gen = enhance_array(gen, model=super_resolution)
            gen = cv2.resize(
                gen, (size, size), interpolation=cv2.INTER_AREA if gen.shape[0] > size else cv2.INTER_LINEAR
            )
            out[i] = composite(crops[i], gen, big_alpha[i])
    return out


def match_colour(generated: np.ndarray, original: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The generated crop (float 0..255) with each channel's mean and spread inside the face region moved
    to the original's (the spread ratio kept within 0.5..2), and grey where the photo is grey: lighting,
    white balance and film match the scene. Six numbers carry no identity. Returns uint8."""
    out = generated.astype(np.float32)
    if inside.sum() >= 16:
        g, o = out[inside], original[inside].astype(np.float32)
        ratio = np.clip((o.std(0) + 1.0) / (g.std(0) + 1.0), 0.5, 2.0)
        out = (out - g.mean(0)) * ratio + o.mean(0)
        if np.abs(o - o.mean(1, keepdims=True)).max() < 4:  # a greyscale photo (or nearly)
            out[:] = out.mean(2, keepdims=True)
    return out.round().clip(0, 255).astype(np.uint8)


def align_to_crop(rgb: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face with five ``landmarks`` (5, 2) in ``rgb`` warped onto the generator's crop (a similarity
    fit to :func:`crop_template`; area-averaged when shrinking, edges repeated): (crop uint8 (S, S, 3),
    landmarks in the crop float32 (5, 2), the 2x3 transform)."""
    lm = np.asarray(landmarks, np.float64)
    m = similarity_transform(lm, crop_template())
    crop = cv2.warpAffine(
        rgb,
        m,
        (SURROGATE_SIZE, SURROGATE_SIZE),
        flags=cv2.INTER_AREA if _scale(m) < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return crop, (lm @ m[:, :2].T + m[:, 2]).astype(np.float32), m


def _scale(m: np.ndarray) -> float:
    """The scale of a similarity transform (crop pixels per image pixel)."""
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
