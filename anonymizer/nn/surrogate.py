"""Surrogate faces: a password-conditioned U-Net generator and a conditional multi-scale PatchGAN.

The generator sees an aligned face crop whose face region is masked out (so the original identity is not
there to copy), the mask, and five landmark heatmaps (pose and expression), and paints a face into the
masked region. A code vector (derived from a password, :mod:`anonymizer.vault.surrogate`) modulates
every scale of the encoder and the decoder through FiLM (per-channel scale and shift), so the code
decides the identity. Output = input outside the mask, generated inside.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, WeightsError
from ._registry import register_model, with_weights
from .backbones import init_weights

#: Side of the aligned crop (pixels) and the code's length. 64 px and narrow widths keep a training step
#: under half a second on a 2-core CPU; large faces are enlarged by the SRGAN model when painted back.
SURROGATE_SIZE = 64
CODE_DIM = 64
WIDTHS = (16, 48, 96, 192)
#: Rows of the generator's code palette (see :class:`SurrogateGenerator`).
PALETTE_SIZE = 64
#: Where the 5 landmarks go in the crop: the standard 112-px template scaled to SURROGATE_SIZE and
#: shrunk towards the centre, so that forehead, chin and cheeks are inside the crop.
LANDMARK_SPREAD = 0.9


def crop_template(size: int = SURROGATE_SIZE) -> np.ndarray:
    """(5, 2) landmark positions of the surrogate crop."""
    from ..ops.align import TEMPLATE_112

    t = TEMPLATE_112 / 112.0 - 0.5
    return ((t * LANDMARK_SPREAD + 0.5) * size).astype(np.float32) + np.array([0, size * 0.02], np.float32)


def landmark_heatmaps(landmarks: Tensor, size: int = SURROGATE_SIZE, sigma: float | None = None) -> Tensor:
    """Gaussian heatmaps (B, 5, size, size) of landmarks (B, 5, 2) given in crop pixels; ``sigma``
    defaults to 3 px per 128 px of crop."""
    sigma = 3.0 * size / 128 if sigma is None else sigma
    ax = torch.arange(size, dtype=landmarks.dtype, device=landmarks.device) + 0.5
    dx = (ax[None, None, None, :] - landmarks[:, :, 0, None, None]) ** 2
    dy = (ax[None, None, :, None] - landmarks[:, :, 1, None, None]) ** 2
    return torch.exp(-(dx + dy) / (2 * sigma**2))


def face_mask(landmarks: Tensor, size: int = SURROGATE_SIZE) -> Tensor:
    """Soft elliptical face-region mask (B, 1, size, size) around the landmarks: eyes, nose, mouth,
    cheeks and brows (what carries identity), feathered over a few pixels."""
    eyes = landmarks[:, :2].mean(1)
    mouth = landmarks[:, 3:].mean(1)
    centre = (eyes + mouth) / 2
    eye_dist = (landmarks[:, 1] - landmarks[:, 0]).norm(dim=1).clamp_min(1.0)
    vertical = (mouth - eyes).norm(dim=1).clamp_min(1.0)
    rx = eye_dist * 1.05
    ry = vertical * 1.55
    ax = torch.arange(size, dtype=landmarks.dtype, device=landmarks.device) + 0.5
    x = (ax[None, None, :] - centre[:, 0, None, None]) / rx[:, None, None]
    y = (ax[None, :, None] - centre[:, 1, None, None] + 0.08 * ry[:, None, None]) / ry[:, None, None]
    r = torch.sqrt(x**2 + y**2)
    return torch.clamp((1.08 - r) / 0.12, 0, 1)[:, None]


class FiLM(nn.Module):
    """Per-channel (1 + gamma) * x + beta from the code."""

    def __init__(self, code_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(code_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        gamma, beta = self.proj(code)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + gamma) + beta


class CodedBlock(nn.Module):
    """conv 3x3 (stride 1 or 2) -> instance norm -> FiLM(code) -> LeakyReLU, twice (the first strided)."""

    def __init__(self, cin: int, cout: int, code_dim: int, *, stride: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.n1 = nn.InstanceNorm2d(cout, affine=False)
        self.n2 = nn.InstanceNorm2d(cout, affine=False)
        self.f1 = FiLM(code_dim, cout)
        self.f2 = FiLM(code_dim, cout)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        x = F.leaky_relu(self.f1(self.n1(self.c1(x)), code), 0.2)
        return F.leaky_relu(self.f2(self.n2(self.c2(x)), code), 0.2)


class SurrogateGenerator(nn.Module):
    """U-Net with FiLM at every scale.

    forward(image Tensor[B, 3, S, S] in 0..1, mask Tensor[B, 1, S, S] in 0..1 (1 = replace), heatmaps
    Tensor[B, 5, S, S], code Tensor[B, CODE_DIM]) -> Tensor[B, 3, S, S] in 0..1, equal to ``image``
    where mask == 0.

    ``palette`` (buffer, PALETTE_SIZE x CODE_DIM, saved with the weights): codes that this generator was
    trained to turn into mutually different people (``python -m anonymizer.train.surrogate --palette``),
    perhaps with more codes weighed along with them (``surrogate_palette --weigh --extra``: weights whose
    palette has another number of rows load with that many), which the painter hands out first
    (:meth:`anonymizer.vault.surrogate.SurrogateSeed.palette_index`).
    All zeros means none (random weights, or weights trained without one: every code is then drawn
    from the password as a standard-normal vector). Weights saved without the buffer load as "none".
    ``palette_weight`` (buffer, one value per row): how often the painter hands out each row, relative to the
    others (``python -m anonymizer.train.surrogate_palette --weigh``); all zeros means equally often.
    ``alt`` (other generators, empty by default) and ``palette_net`` (buffer, one value per row): an
    ensemble. Row r is painted by this network when ``palette_net[r]`` is 0, else by ``alt[palette_net[r] - 1]``
    (``surrogate_palette --weigh --join``: another generator's rows weighed with these, since two networks
    hold more mutually different people than one); weights saved with ``alt.K.`` keys load with that many.
    """

    palette: Tensor
    palette_weight: Tensor
    palette_net: Tensor

    def __init__(
        self, *, widths: tuple[int, ...] = WIDTHS, code_dim: int = CODE_DIM, palette_size: int = PALETTE_SIZE
    ) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.register_buffer("palette", torch.zeros(palette_size, code_dim))
        self.register_buffer("palette_weight", torch.zeros(palette_size))
        self.register_buffer("palette_net", torch.zeros(palette_size, dtype=torch.int64))
        self.alt = nn.ModuleList()
        self.code_mlp = nn.Sequential(nn.Linear(code_dim, code_dim), nn.LeakyReLU(0.2), nn.Linear(code_dim, code_dim))
        self.down = nn.ModuleList()
        cin = 3 + 1 + 5
        for i, w in enumerate(widths):
            self.down.append(CodedBlock(cin, w, code_dim, stride=1 if i == 0 else 2))
            cin = w
        self.up = nn.ModuleList()
        for w_skip in reversed(widths[:-1]):
            self.up.append(CodedBlock(cin + w_skip, w_skip, code_dim))
            cin = w_skip
        self.out = nn.Conv2d(cin, 3, 3, 1, 1)
        init_weights(self)

    @property
    def has_palette(self) -> bool:
        return bool(self.palette.abs().sum() > 0)

    @property
    def row_weights(self) -> np.ndarray | None:
        """The palette's row weights (float64), or None when the rows are handed out equally often."""
        w = self.palette_weight.detach().cpu().double().numpy()
        return w if (w != 0).any() else None

    @property
    def row_nets(self) -> np.ndarray:
        """Which network paints each palette row (int64; 0: this one, k: ``alt[k - 1]``)."""
        return self.palette_net.detach().cpu().numpy().astype(np.int64)

    def set_palette(self, codes: Tensor, weights: Tensor | None = None, nets: Tensor | None = None) -> None:
        """Replace the palette by ``codes`` (rows >= 1, CODE_DIM), its row weights by ``weights`` (rows;
        None: all zeros, the rows handed out equally often) and the networks that paint the rows by
        ``nets`` (rows; None: all this one); the buffers take the new number of rows."""
        w = torch.zeros(len(codes)) if weights is None else weights
        n = torch.zeros(len(codes), dtype=torch.int64) if nets is None else nets
        if (
            codes.ndim != 2
            or codes.shape[1] != self.code_dim
            or len(codes) < 1
            or w.shape != (len(codes),)
            or n.shape != w.shape
        ):
            raise InputError(
                f"expected a palette (rows, {self.code_dim}), (rows,) weights and (rows,) nets, got "
                f"{tuple(codes.shape)}, {tuple(w.shape)}, {tuple(n.shape)}"
            )
        if int(n.min()) < 0 or int(n.max()) > len(self.alt):
            raise InputError(
                f"palette rows name networks 0 .. {len(self.alt)} (this one and its {len(self.alt)} others), "
                f"got {int(n.min())} .. {int(n.max())}"
            )
        self.palette = codes.to(self.palette.device, self.palette.dtype).clone()
        self.palette_weight = w.to(self.palette_weight.device, self.palette_weight.dtype).clone()
        self.palette_net = n.to(self.palette_net.device, torch.int64).clone()

    def _load_from_state_dict(
        self, state_dict: dict[str, Tensor], prefix: str, *args: object, **kwargs: object
    ) -> None:
        # an ensemble's other generators (surrogate_palette --weigh --join): as many as the weights have
        alts = {int(k[len(prefix) + 4 :].split(".", 1)[0]) for k in state_dict if k.startswith(prefix + "alt.")}
        while len(self.alt) < len(alts):
            self.alt.append(SurrogateGenerator(code_dim=self.code_dim, palette_size=1))
        # weights from before the palette (or its row weights) existed: none (load_state_dict's own copy here)
        state_dict.setdefault(prefix + "palette", torch.zeros_like(self.palette))
        pal = state_dict[prefix + "palette"]
        if pal.ndim == 2 and pal.shape[1] == self.code_dim and len(pal) >= 1 and len(pal) != len(self.palette):
            self.set_palette(
                torch.zeros(len(pal), self.code_dim)
            )  # another number of rows (surrogate_palette --weigh --extra)
        state_dict.setdefault(prefix + "palette_weight", torch.zeros_like(self.palette_weight))
        state_dict.setdefault(prefix + "palette_net", torch.zeros_like(self.palette_net))
        nets = state_dict[prefix + "palette_net"]
        if nets.numel() and (int(nets.min()) < 0 or int(nets.max()) > len(self.alt)):
            raise InputError(
                f"palette rows name networks up to {int(nets.max())} but the weights hold {len(self.alt)} others"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, image: Tensor, mask: Tensor, heatmaps: Tensor, code: Tensor, net: int | Tensor = 0) -> Tensor:
        """``net``: which network paints (0: this one, k: ``alt[k - 1]``), one for the batch or one per sample."""
        if image.ndim != 4 or image.shape[1] != 3 or code.shape != (image.shape[0], self.code_dim):
            raise InputError(
                f"expected image [B, 3, S, S] and code [B, {self.code_dim}], got {tuple(image.shape)}, "
                f"{tuple(code.shape)}"
            )
        if isinstance(net, Tensor):
            if net.shape != (image.shape[0],):
                raise InputError(f"expected one net per sample ({image.shape[0]},), got {tuple(net.shape)}")
            out = torch.empty_like(image)
            for k in net.unique().tolist():
                sel = net == k
                out[sel] = self.forward(image[sel], mask[sel], heatmaps[sel], code[sel], int(k))
            return out
        if net:
            if not 0 < net <= len(self.alt):
                raise InputError(f"net must be 0 .. {len(self.alt)}, got {net}")
            return self.alt[net - 1](image, mask, heatmaps, code)
        z = self.code_mlp(code)
        x = torch.cat([image * (1 - mask) * 2 - 1, mask, heatmaps], dim=1)
        skips = []
        for block in self.down:
            x = block(x, z)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1), z)
        painted = torch.sigmoid(self.out(x))
        return image * (1 - mask) + painted * mask


class PatchDiscriminator(nn.Module):
    """Conditional multi-scale PatchGAN: the same small patch critic at full and half resolution, each
    seeing the image and the landmark heatmaps. forward -> (list of logit maps, list of features)."""

    def __init__(self, *, scales: int = 2, channels: int = 32) -> None:
        super().__init__()
        self.critics = nn.ModuleList(self._critic(channels) for _ in range(scales))
        init_weights(self)

    @staticmethod
    def _critic(c: int) -> nn.ModuleList:
        cin = 3 + 5
        layers = nn.ModuleList()
        for w in (c, 2 * c, 4 * c):
            layers.append(nn.Sequential(nn.Conv2d(cin, w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)))
            cin = w
        layers.append(nn.Conv2d(cin, 1, 3, 1, 1))
        return layers

    def forward(self, image: Tensor, heatmaps: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        x = torch.cat([image * 2 - 1, heatmaps], dim=1)
        logits, feats = [], []
        for i, critic in enumerate(self.critics):
            h = x if i == 0 else F.avg_pool2d(x, 2**i)
            layers = list(critic.children())
            for layer in layers[:-1]:
                h = layer(h)
                feats.append(h)
            logits.append(layers[-1](h))
        return logits, feats


@register_model("surrogate")
def surrogate(*, weights: str | None = "default") -> SurrogateGenerator:
    """The surrogate-face generator (models/surrogate.md); ``weights=None``: random."""
    return with_weights(SurrogateGenerator(), "surrogate", weights)


@register_model("surrogate_discriminator")
def surrogate_discriminator(*, weights: str | None = None) -> PatchDiscriminator:
    """The training-time critic (never shipped): always random."""
    if weights is not None:
        raise WeightsError("the surrogate discriminator has no shipped weights")
    return PatchDiscriminator()
