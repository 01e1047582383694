"""MediaPipe's face-landmark network (the 468-point face mesh), as our own torch module.

The architecture is MediaPipe's ``face_landmark.tflite`` (Apache-2.0), layer for layer: a stride-2 stem,
fourteen residual blocks (depthwise 3x3 -> pointwise 1x1, max-pooled and zero-channel-padded skip when
the block downsamples, PReLU after the sum) down to 6x6, then two heads: the mesh (468 x, y, z) and the
face presence (one logit). TFLite's 'SAME' padding is asymmetric when the stride is 2 (all extra on the
bottom and right), which :func:`tf_same_pad` reproduces exactly. Weights are converted from the tflite
file by :mod:`anonymizer.nn.facemesh_tflite` and shipped in ``models/face_mesh.safetensors``.

The network expects a face already cropped: :func:`mesh_crop_matrix` builds the crop MediaPipe uses
(square, upright eyes, 1.5x the face box) from a detected face, and :func:`mesh_to_image` maps the
mesh back into the photo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ._registry import register_model, with_weights

#: Side of the square input crop, in pixels.
MESH_INPUT = 192
MESH_POINTS = 468
#: MediaPipe's region of interest around a face-detector box: a square 1.5 times its longer side.
MESH_MARGIN = 1.5
#: A few indices into the mesh (MediaPipe's canonical face model), in the image's left-to-right order for
#: an upright frontal face: eye centres are the mean of each eye's corner pair.
MESH_LEFT_EYE = (33, 133)  # subject's right eye: smaller x in the image
MESH_RIGHT_EYE = (362, 263)
MESH_NOSE_TIP = 1
MESH_MOUTH_LEFT = 61
MESH_MOUTH_RIGHT = 291


def tf_same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """Zero-pad ``x`` (Tensor[N, C, H, W]) as TensorFlow's 'SAME' does before a ``kernel`` x ``kernel``
    window with ``stride``: output side ceil(side / stride), the odd pixel of padding bottom / right."""

    def split(side: int) -> tuple[int, int]:
        total = max((math.ceil(side / stride) - 1) * stride + kernel - side, 0)
        return total // 2, total - total // 2

    top, bottom = split(x.shape[-2])
    left, right = split(x.shape[-1])
    return F.pad(x, (left, right, top, bottom))


#: maps of at least this many pixels (24 x 24 and up: the network's costly layers) take Pointwise's float32
#: product; smaller ones the float64 one
POINTWISE_F32_PIXELS = 24 * 24


class Pointwise(nn.Conv2d):
    """A 1x1 convolution (the parameters of ``nn.Conv2d(in_ch, out_ch, 1)``) computed as one matrix product
    over the pixels, in a summation order that does not depend on the thread count. oneDNN's float32 1x1
    convolution sums in an order that does, so the mesh's last bits differed between ``--threads 1`` and 2;
    so does MKL's float32 matrix product, but only for products of a few rows (measured for 1-55,296 rows
    against 16-1,404 columns at 1-8 threads: only 5-11 rows differed). Maps of at least
    :data:`POINTWISE_F32_PIXELS` pixels (as many rows at least) take the float32 product; smaller maps a
    float64 product rounded back to float32, whose sums differ between thread counts only far below
    float32's precision. The float64 product on every map cost 9 ms of the network's 18 for 3 faces on
    2 cores; these products now take about 1.5."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        rows, weight = x.permute(0, 2, 3, 1).reshape(-1, c), self.weight[:, :, 0, 0].t()
        if h * w >= POINTWISE_F32_PIXELS and x.dtype == torch.float32:
            y = rows @ weight if self.bias is None else torch.addmm(self.bias, rows, weight)
        else:
            y = rows.double() @ weight.double()
            if self.bias is not None:
                y = y + self.bias.double()
        return y.to(x.dtype).reshape(n, h, w, self.out_channels).permute(0, 3, 1, 2)


class ResidualBlock(nn.Module):
    """Depthwise 3x3 (stride 1 or 2, 'SAME') -> pointwise 1x1, plus the input, then PReLU.

    With stride 2 the skip path is a 2x2 max pool; when the block widens, the skip is zero-padded in
    channels (MediaPipe's "channel padding"), so the extra channels carry only the convolution.
    """

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2) or out_ch < in_ch:
            raise InputError(f"unsupported block {in_ch}->{out_ch} with stride {stride}")
        self.stride = stride
        self.extra = out_ch - in_ch
        # stride 1: 'SAME' pads one pixel each side, which the convolution does itself (an explicit pad
        # copied every block's input: 4% of a surrogate video's CPU time); stride 2 pads bottom / right only
        self.dw = nn.Conv2d(in_ch, in_ch, 3, stride, 1 if stride == 1 else 0, groups=in_ch)
        self.pw = Pointwise(in_ch, out_ch)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pw(self.dw(x if self.stride == 1 else tf_same_pad(x, 3, self.stride)))
        skip = F.max_pool2d(x, 2, 2) if self.stride == 2 else x
        if self.extra:
            skip = F.pad(skip, (0, 0, 0, 0, 0, self.extra))
        return self.act(y + skip)


class Stem(nn.Module):
    """3x3 convolution, stride 2, 'SAME' (asymmetric), then PReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, 2, 0)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(tf_same_pad(x, 3, 2)))


class MeshHead(nn.Module):
    """Residual blocks from 6x6 to 3x3, a 1x1 reduction to 32 channels (+ PReLU), one more block, and a
    3x3 'VALID' convolution to a 1x1 map of ``out_ch`` values."""

    def __init__(self, in_ch: int, out_ch: int, *, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            ResidualBlock(in_ch, in_ch, stride=2), *(ResidualBlock(in_ch, in_ch) for _ in range(blocks - 1))
        )
        self.reduce = Pointwise(in_ch, 32)
        self.reduce_act = nn.PReLU(32)
        self.refine = ResidualBlock(32, 32)
        self.out = nn.Conv2d(32, out_ch, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.refine(self.reduce_act(self.reduce(self.blocks(x))))
        return self.out(x).flatten(1)


class MeshOutput(NamedTuple):
    """landmarks: Tensor[N, 468, 3] (x, y, z) in pixels of the 192x192 input (z: depth relative to the
    face's centre, same scale as x, smaller is nearer); presence: Tensor[N] in 0..1 (sigmoid of
    ``presence_logit``), the probability that the crop holds a face."""

    landmarks: Tensor
    presence: Tensor
    presence_logit: Tensor


class FaceMesh(nn.Module):
    """MediaPipe's face-landmark network.

    forward(x: Tensor[N, 3, 192, 192] float RGB in 0..1, NCHW; a face cropped square around MediaPipe's
    region, see :func:`mesh_crop_matrix`) -> :class:`MeshOutput`.
    """

    #: (in, out, stride) of the shared trunk's blocks after the stem: 96 -> 48 -> 24 -> 12 -> 6 pixels.
    TRUNK = (
        (16, 16, 1), (16, 16, 1),
        (16, 32, 2), (32, 32, 1), (32, 32, 1),
        (32, 64, 2), (64, 64, 1), (64, 64, 1),
        (64, 128, 2), (128, 128, 1), (128, 128, 1),
        (128, 128, 2), (128, 128, 1), (128, 128, 1),
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.stem = Stem(3, 16)
        self.trunk = nn.Sequential(*(ResidualBlock(i, o, stride=s) for i, o, s in self.TRUNK))
        self.mesh = MeshHead(128, MESH_POINTS * 3, blocks=3)
        self.presence = MeshHead(128, 1, blocks=1)

    def forward(self, x: Tensor) -> MeshOutput:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, MESH_INPUT, MESH_INPUT):
            raise InputError(f"face-mesh input must be Tensor[N, 3, {MESH_INPUT}, {MESH_INPUT}], got {tuple(x.shape)}")
        features = self.trunk(self.stem(x))
        landmarks = self.mesh(features).reshape(-1, MESH_POINTS, 3)
        logit = self.presence(features)[:, 0]
        return MeshOutput(landmarks, torch.sigmoid(logit), logit)


@register_model("face_mesh")
def face_mesh(*, weights: str | None = "default") -> FaceMesh:
    """MediaPipe's 468-point face mesh with the weights converted from its tflite file and shipped in
    models/ (``weights=None``: the same network, randomly initialised, for tests)."""
    return with_weights(FaceMesh(), "face_mesh", weights)


def mesh_crop_matrix(
    box: tuple[float, float, float, float] | np.ndarray,
    landmarks: tuple[tuple[float, float], ...] | np.ndarray,
    *,
    margin: float = MESH_MARGIN,
    size: int = MESH_INPUT,
) -> np.ndarray:
    """The (2, 3) float64 affine map from photo pixels to the network's crop, for one detected face.

    box: (x1, y1, x2, y2) in pixels; landmarks: five (x, y) points in
    :data:`anonymizer.types.LANDMARK_NAMES` order (only the eyes are used). As MediaPipe does: a square
    ``margin`` times the box's longer side, centred on the box, rotated so the eyes are level.
    Use with ``cv2.warpAffine(rgb, m, (size, size))``.
    """
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    pts = np.asarray(landmarks, dtype=np.float64)
    if b.shape != (4,) or pts.shape != (5, 2) or not (np.isfinite(b).all() and np.isfinite(pts).all()):
        raise InputError(f"expected a box (4,) and five (x, y) landmarks, got {b.shape} and {pts.shape}")
    side = margin * max(b[2] - b[0], b[3] - b[1])
    if side <= 0:
        raise InputError(f"empty face box {b.tolist()}")
    (lx, ly), (rx, ry) = pts[0], pts[1]
    angle = math.atan2(ry - ly, rx - lx)
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    s = size / side
    cos, sin = s * math.cos(angle), s * math.sin(angle)
    # rotate by -angle about the centre, scale, then move the centre to the crop's centre
    m = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]])
    m[:, 2] = np.array([size / 2, size / 2]) - m[:, :2] @ np.array([cx, cy])
    return m


def mesh_to_image(landmarks: Tensor, matrix: np.ndarray) -> Tensor:
    """Map landmarks (Tensor[..., 468, 3], pixels of the crop) into the photo through the inverse of
    ``matrix`` (from :func:`mesh_crop_matrix`); z is rescaled by the same factor as x and y."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise InputError(f"expected a (2, 3) affine matrix, got {m.shape}")
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    scale = math.sqrt(abs(np.linalg.det(inv[:, :2])))
    a = torch.as_tensor(inv[:, :2], dtype=landmarks.dtype, device=landmarks.device)
    t = torch.as_tensor(inv[:, 2], dtype=landmarks.dtype, device=landmarks.device)
    xy = landmarks[..., :2] @ a.T + t
    return torch.cat([xy, landmarks[..., 2:] * scale], dim=-1)


def mesh_in_image(
    net: FaceMesh,
    rgb: np.ndarray,
    box: tuple[float, float, float, float] | np.ndarray,
    landmarks: tuple[tuple[float, float], ...] | np.ndarray,
) -> np.ndarray:
    """The mesh of one detected face: float32 (468, 3) in pixels of ``rgb`` (uint8 RGB, H x W x 3), z on the
    same scale. ``box`` and the five ``landmarks`` as our detector gives them (see :func:`mesh_crop_matrix`)."""
    return fit_mesh(net, rgb, box, landmarks)[0]


def fit_mesh(
    net: FaceMesh,
    rgb: np.ndarray,
    box: tuple[float, float, float, float] | np.ndarray,
    landmarks: tuple[tuple[float, float], ...] | np.ndarray,
) -> tuple[np.ndarray, float]:
    """:func:`mesh_in_image` and the network's face presence (0..1) for the same crop, the same at any
    thread count (see :class:`Pointwise`). The network runs in its parameters' dtype; the mesh is float32."""
    meshes, presence = fit_meshes(net, rgb, [box], [landmarks])
    return meshes[0], float(presence[0])


def fit_meshes(
    net: FaceMesh,
    rgb: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float] | np.ndarray],
    landmarks: Sequence[tuple[tuple[float, float], ...] | np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_mesh` for several faces of one photo in one batch: (float32 [N, 468, 3] meshes in pixels of
    ``rgb``, float32 [N] presence); N = 0 gives empty arrays."""
    if len(boxes) != len(landmarks):
        raise InputError(f"{len(boxes)} boxes but {len(landmarks)} sets of landmarks")
    if not boxes:
        return np.zeros((0, MESH_POINTS, 3), np.float32), np.zeros(0, np.float32)
    matrices = [mesh_crop_matrix(b, lm) for b, lm in zip(boxes, landmarks, strict=True)]
    crops = np.stack([cv2.warpAffine(rgb, m, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR) for m in matrices])
    dtype = next(net.parameters()).dtype
    with torch.inference_mode():
        out = net(torch.from_numpy(crops).permute(0, 3, 1, 2).to(dtype) / 255)
    meshes = np.stack([mesh_to_image(out.landmarks[k], m).float().numpy() for k, m in enumerate(matrices)])
    return meshes, out.presence.float().numpy()
