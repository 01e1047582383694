"""Face alignment: similarity transforms between point sets (five landmarks onto a canonical template,
one face mesh onto another)."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError
from .checks import require_rgb

#: The five-point template (eyes, nose tip, mouth corners; LANDMARK_NAMES order) of the common 112x112
#: face-recognition crop, in pixels of that crop.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The least-squares similarity mapping points ``src`` onto ``dst`` (Umeyama's closed form, reflection
    excluded), in any dimension D.

    src, dst: float (N, D) points, N >= 2. Returns (scale, rotation float64 (D, D) with det +1, translation
    float64 (D,)) with dst ~ scale * src @ rotation.T + translation.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < 2:
        raise InputError(f"expected two (N, D) point sets with N >= 2, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise InputError("landmarks must be finite")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s <= 1e-12:
        raise InputError("landmarks are all at one point")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[-1, -1] = -1
    rot = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / var_s)
    return scale, rot, mu_d - scale * rot @ mu_s


def similarity_onto(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``src`` (N, D) moved onto ``dst`` by the least-squares similarity (:func:`similarity_fit`): its own
    shape in ``dst``'s place, turn and size. Computed as ``scale * src @ rotation.T + translation`` in
    ``src``'s dtype where that is float64 (float32 points are scaled in float32, then turned in float64)."""
    scale, rot, t = similarity_fit(src, dst)
    return scale * src @ rot.T + t


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    src, dst: float (N, 2) points, N >= 2. Returns a (2, 3) float64 matrix M with dst ~ M @ [x, y, 1].
    (Umeyama's closed form, reflection excluded: :func:`similarity_fit` in 2D.)
    """
    src = np.asarray(src, dtype=np.float64)
    if src.ndim != 2 or src.shape[-1] != 2:
        raise InputError(f"expected two (N, 2) point sets with N >= 2, got {src.shape} and {np.shape(dst)}")
    scale, rot, t = similarity_fit(src, dst)
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = t
    return m


def align_face(
    rgb: np.ndarray, landmarks: np.ndarray | tuple[tuple[float, float], ...], *, size: int = 112
) -> np.ndarray:
    """Crop the face whose five ``landmarks`` (pixels of ``rgb``) are given, aligned to the template.

    rgb: uint8 (H, W, 3). Returns uint8 (size, size, 3); pixels outside the image are edge-replicated.
    """
    require_rgb(rgb)
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2):
        raise InputError(f"expected five (x, y) landmarks, got shape {pts.shape}")
    m = similarity_transform(pts, TEMPLATE_112 * (size / 112.0))
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def affine_to_theta(m: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """The (2, 3) ``theta`` of :func:`torch.nn.functional.affine_grid` (align_corners=False) that samples
    the destination of the pixel-space affine ``m`` (source (w, h) -> destination (w, h) pixels).

    affine_grid maps destination coordinates in -1..1 to source coordinates in -1..1, so ``theta`` is
    N_src @ inv(m) @ inv(N_dst), with N the pixel-to-normalised map of each image.
    """

    def norm(w: int, h: int) -> np.ndarray:
        return np.array([[2.0 / w, 0, 1.0 / w - 1], [0, 2.0 / h, 1.0 / h - 1], [0, 0, 1]])

    full = np.vstack([np.asarray(m, np.float64), [0, 0, 1]])
    theta = norm(*src_size) @ np.linalg.inv(full) @ np.linalg.inv(norm(*dst_size))
    return theta[:2]
