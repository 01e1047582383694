"""Audit an anonymized photo: can anyone still be recognised, does its metadata leak, does its vault open.

For each output the audit records
- ``faces``: faces our detector still finds in the output (box, score, and ``synthetic``: the deepfake
  classifier's probability that the face is generated or manipulated, when a scorer is given, with
  ``synthetic_flagged`` when it is at or above ``synthetic_threshold``, the scorer's threshold);
- ``identity``: for every face of the original (from ``--originals`` or restored through the key), the
  recognizer's distance between the original face and the same place in the output; a distance at or
  below the recognizer's threshold (0.6, dlib's) means the person is still recognisable;
- ``leaks``: identifying metadata (GPS, thumbnail, XMP, comments, serial numbers, ...);
- ``vault``: whether one is present (embedded or ``.vault`` beside it) and whether the key opens it;
- ``verdict``: "pass" or "fail", and the reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AnonymizerError, InputError, VaultError
from ..media.image import IMAGE_SUFFIXES, load_image
from ..media.video import VIDEO_SUFFIXES
from ..types import Face
from .metadata import Leak, metadata_leaks

if TYPE_CHECKING:
    from ..pipeline.deepfake import DeepfakeScorer
    from ..pipeline.photo import FaceFinder
    from ..vault.keys import Identity, Key
    from .recognizers import Recognizer

#: A face the detector still finds at or above this score counts as visible.
VISIBLE_SCORE = 0.5
#: Identity distances are measured for the original's faces found at least this sure and this tall (px):
#: below, the detector's finds include backs of heads and emblems (on the sample clip at the video
#: threshold), and recognizers compare blurs (dlib put a 12 px face and the black cover over it 0.19 apart)
IDENTITY_MIN_SCORE, IDENTITY_MIN_HEIGHT = VISIBLE_SCORE, 24.0
#: A face counts as recognisable only where the output still shows a face: the detector finds a visible
#: one (:data:`VISIBLE_SCORE`) overlapping the original's box by at least this IoU. Under an opaque cover
#: the recognizer still matches from the hair, ears and collar around it (dlib put 15 of 21 covered faces
#: of the sample clip 0.36-0.60 from their originals; one more at 0.36 where the detector saw a 0.22
#: "face" among the black covers), which no viewer recognises a face by
SHOWN_IOU = 0.3


@dataclass
class AuditResult:
    path: Path
    original: str | None = None
    recognizer: str | None = None
    faces: list[dict[str, Any]] = field(default_factory=list)
    identity: list[dict[str, Any]] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)
    vault: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    #: videos only (None for photos): faces followed over frames (anonymizer.audit.video) and the frame count
    tracks: list[dict[str, Any]] | None = None
    frames: int | None = None
    #: best crop of each track, for the HTML sheet (not in the JSON)
    track_crops: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    #: videos with an original: each original track's (original, output) crops at its worst frame, for the HTML sheet
    identity_crops: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    #: images kept for the HTML sheet (not in the JSON): output and, when known, original RGB
    output_rgb: np.ndarray | None = field(default=None, repr=False)
    original_rgb: np.ndarray | None = field(default=None, repr=False)
    #: the deepfake scorer's threshold when faces were scored (``synthetic_flagged`` at or above it)
    synthetic_threshold: float | None = None

    @property
    def verdict(self) -> str:
        return "fail" if self.reasons else "pass"

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": str(self.path),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "original": self.original,
            "recognizer": self.recognizer,
            "faces": self.faces,
            "identity": self.identity,
            "leaks": [leak.to_dict() for leak in self.leaks],
            "vault": self.vault,
        }
        if self.synthetic_threshold is not None:
            doc["synthetic_threshold"] = self.synthetic_threshold
        if self.tracks is not None:
            doc.update(kind="video", frames=self.frames, tracks=self.tracks)
        return doc


def find_original(rel: Path, originals: Path) -> Path | None:
    """The original of an output at ``rel`` (its path relative to the audited folder) in ``originals``:
    the same relative path (outputs mirror their input tree), else the same stem with any image or video
    suffix (outputs may change format)."""
    direct = originals / rel
    if direct.is_file():
        return direct
    folder = direct.parent
    if folder.is_dir():
        for cand in sorted(folder.iterdir()):
            if cand.stem == rel.stem and cand.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and cand.is_file():
                return cand
    return None


def box_text(box: Any) -> str:
    """A face's box for a reason line: [x1, y1, x2, y2] in whole pixels."""
    return "[" + ", ".join(f"{float(v):.0f}" for v in box) + "]"


def _has_vault(path: Path) -> bool:
    from ..vault.containers import extract
    from ..vault.images import sidecar_path

    if sidecar_path(path).is_file():
        return True
    try:
        vault, _ = extract(path.read_bytes())
    except VaultError:
        return True  # a damaged vault is still a vault
    except OSError:
        return False
    return vault is not None


def audit_image(
    path: str | Path,
    *,
    finder: FaceFinder,
    recognizer: Recognizer | None = None,
    original: str | Path | None = None,
    key: Key | Identity | None = None,
    keep_images: bool = False,
    deepfake: DeepfakeScorer | None = None,
) -> AuditResult:
    """Audit one anonymized photo (see the module docstring). Raises InputError for unreadable files."""
    path = Path(path)
    res = AuditResult(path=path)
    out = load_image(path)
    found = finder.find(out.rgb)
    res.faces = [dict(f.to_dict(), visible=f.score >= VISIBLE_SCORE) for f in found]
    if deepfake is not None:
        res.synthetic_threshold = deepfake.threshold
        for row, p in zip(res.faces, deepfake.score_faces(out.rgb, found), strict=True):
            row.update(synthetic=round(float(p), 4), synthetic_flagged=deepfake.flagged(p))
    res.leaks = metadata_leaks(path)
    for leak in res.leaks:
        res.reasons.append(f"metadata leaks: {leak.detail}")

    res.vault = {"present": _has_vault(path), "opens": None}
    orig_rgb: np.ndarray | None = None
    if key is not None and res.vault["present"]:
        from ..vault.images import restore_file

        try:
            orig_rgb = restore_file(path, key).image
            res.vault["opens"] = True
            res.original = "restored through the key"
        except VaultError as exc:
            res.vault["opens"] = False
            res.vault["error"] = exc.reason
            res.reasons.append(f"the vault does not open: {exc.reason}")
    if original is not None:
        try:
            orig_rgb = load_image(original).rgb
            res.original = str(original)
        except AnonymizerError as exc:
            raise InputError(f"cannot read its original {original}: {exc}", path=path) from None

    if orig_rgb is not None:
        if recognizer is None:
            from .recognizers import get_recognizer

            recognizer = get_recognizer()
        res.recognizer = recognizer.name
        res.identity = identity_rows(orig_rgb, out.rgb, finder, recognizer, shown=found)
        for i, row in enumerate(res.identity):
            if row["recognisable"]:
                res.reasons.append(
                    f"face {i} at {box_text(row['box'])} is still recognisable: {recognizer.name} distance "
                    f"{row['distance']:.3f} <= {recognizer.threshold:.3g}"
                )
    else:
        for f in res.faces:
            if f["visible"]:
                res.reasons.append(
                    f"a face is visible at {box_text(f['box'])} (score {f['score']:.2f}) and no original "
                    "is given to check its identity"
                )
    if keep_images:
        res.output_rgb, res.original_rgb = out.rgb, orig_rgb
    return res


def identity_rows(
    orig: np.ndarray, out: np.ndarray, finder: FaceFinder, recognizer: Recognizer, shown: Sequence[Face] | None = None
) -> list[dict[str, Any]]:
    """Distance between each face of the original and the same geometry in the output (its box in the
    output's pixels, its detection score, and whether the recognizer takes the two for one person). Only
    faces a recognizer can judge are measured (:data:`IDENTITY_MIN_SCORE`, :data:`IDENTITY_MIN_HEIGHT`).
    ``shown``: the faces the detector finds in ``out``, when the caller has them already."""
    faces = [
        f for f in finder.find(orig) if f.score >= IDENTITY_MIN_SCORE and f.box[3] - f.box[1] >= IDENTITY_MIN_HEIGHT
    ]
    if not faces:
        return []
    sy, sx = out.shape[0] / orig.shape[0], out.shape[1] / orig.shape[1]
    moved = [
        Face(
            box=(f.box[0] * sx, f.box[1] * sy, f.box[2] * sx, f.box[3] * sy),
            score=f.score,
            landmarks=tuple((x * sx, y * sy) for x, y in f.landmarks),
        )
        for f in faces
    ]
    a = recognizer.embed_many(orig, faces)
    b = recognizer.embed_many(out, moved)
    there_scores = _shown_faces(moved, finder.find(out) if shown is None else shown)
    rows = []
    for f, ea, eb, there in zip(moved, a, b, there_scores, strict=True):
        d = float(np.linalg.norm(ea.astype(np.float64) - eb.astype(np.float64)))
        rows.append(
            {
                "box": [round(v, 1) for v in f.box],
                "score": round(f.score, 4),
                "distance": round(d, 4),
                "output_face": round(there, 4),
                "recognisable": d <= recognizer.threshold and there >= VISIBLE_SCORE,
            }
        )
    return rows


def _shown_faces(faces: list[Face], found: Sequence[Face]) -> list[float]:
    """For each face's place in the output, the best score of the faces ``found`` there (a box overlapping
    it by :data:`SHOWN_IOU`), 0 where none is."""
    from ..ops.boxes import iou_matrix

    if not found:
        return [0.0] * len(faces)
    iou = iou_matrix(np.array([f.box for f in faces], np.float64), np.array([f.box for f in found], np.float64))
    scores = np.array([f.score for f in found], np.float64)
    return [float(np.where(row >= SHOWN_IOU, scores, 0.0).max()) for row in iou]
