"""Fit SkinTone: a face's skin lightness under the donors' light from its IdentityNet embedding
(models/skin_tone.md).

    python -m anonymizer.train.donor_bank --data ../shared/data/donors --out /tmp/donor_pool --cache /tmp/donor_det.npz
    python -m anonymizer.train.skin_tone --pool /tmp/donor_pool --check ../shared/data/faces-utk \
        --export models/skin_tone.safetensors

Every face of the donor pool (people who do not exist, each with its skin's mean L* measured on forehead
and cheeks, :func:`anonymizer.pipeline.donors.skin_lab`) is aligned by its mesh's five points, scaled to
an even exposure and described by IdentityNet in float64, exactly as the donor painter describes a face
for its tone (``DonorPainter.describe(..., even_light=True)``). A ridge regression (closed form, no
randomness) maps the standardised embedding to that L*; every fifth face is held out for the printed
error, then the head is fitted on all of them. ``--check`` also measures the head on real photos of
faces-utk aged 13 and up (a fixed, seeded sample): how well it and the L* read from the photo separate
the faces labelled white from those labelled black, and how far each moves when the photo is darkened
(what the painter needs: a reading that follows the person, not the light).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from ..nn.skin_tone import SkinTone

if TYPE_CHECKING:
    from ..pipeline.donor_painter import DonorPainter

#: ridge penalty on the standardised embedding (held-out error within 0.1 L* from 1 to 100)
RIDGE = 10.0
#: every HOLD_EVERY-th pool face is held out for the printed error
HOLD_EVERY = 5
#: the exposure (a gain on the pixels) of the darkened copies in ``--check``
DARKER = 0.55


def describe_pool(pool: Path) -> tuple[np.ndarray, np.ndarray]:
    """(IdentityNet embeddings float64 [N, 128] of the exposure-normalised crops, as the painter reads a
    face's tone; skin L* [N]) of every face of the donor pool ``pool``."""
    from ..pipeline.donor_painter import DonorPainter
    from ..pipeline.donor_swap import mesh_face
    from ..pipeline.donors import DonorBank

    bank, painter = DonorBank.load(pool), DonorPainter(tone=SkinTone())  # the shipped head is not needed
    emb = np.zeros((len(bank), 128))
    for i in tqdm(range(len(bank)), desc="describing the pool", unit="face"):
        emb[i] = painter.describe(bank.image(i), mesh_face(bank.mesh(i)), even_light=True)
    return emb, bank.labs[:, 0].astype(np.float64)


def fit(emb: np.ndarray, lightness: np.ndarray, ridge: float = RIDGE) -> SkinTone:
    """A SkinTone head fitted by ridge regression (the intercept not penalised)."""
    centre, scale = emb.mean(0), emb.std(0) + 1e-6
    a = np.hstack([(emb - centre) / scale, np.ones((len(emb), 1))])
    penalty = ridge * np.eye(a.shape[1])
    penalty[-1, -1] = 0.0
    coef = np.linalg.solve(a.T @ a + penalty, a.T @ lightness)
    model = SkinTone(emb.shape[1]).double()
    with torch.no_grad():
        model.get_buffer("centre").copy_(torch.from_numpy(centre))
        model.get_buffer("scale").copy_(torch.from_numpy(scale))
        model.head.weight.copy_(torch.from_numpy(coef[None, :-1]))
        model.head.bias.fill_(float(coef[-1]))
    return model.float().eval()


def predict(model: SkinTone, emb: np.ndarray) -> np.ndarray:
    """The head's L* [N] for embeddings [N, 128] (float32, as the weights are stored)."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.asarray(emb, np.float32))).numpy().astype(np.float64)


def pool_report(emb: np.ndarray, lightness: np.ndarray) -> str:
    held = np.arange(len(emb)) % HOLD_EVERY == 0
    p = predict(fit(emb[~held], lightness[~held]), emb[held])
    err = np.abs(p - lightness[held])
    r = float(np.corrcoef(p, lightness[held])[0, 1])
    return (
        f"held-out pool faces ({int(held.sum())}): mean |error| {err.mean():.2f} L*, 90th percentile "
        f"{np.percentile(err, 90):.2f}, correlation {r:.3f} (the pool's L* spread: {lightness.std():.2f})"
    )


def _auc(high: np.ndarray, low: np.ndarray) -> float:
    return float((high[:, None] > low[None, :]).mean() + 0.5 * (high[:, None] == low[None, :]).mean())


def _label(name: str) -> str | None:
    """faces-utk's third field (0 white, 1 black, ...) of a face aged 13 and up, else None."""
    parts = name.split("_")
    return parts[2] if len(parts) >= 4 and parts[0].isdigit() and int(parts[0]) >= 13 else None


def check_report(model: SkinTone, data: Path, count: int, seed: int) -> list[str]:
    """The head against the L* read from the photo, on ``count`` faces-utk photos (13 and up, half labelled
    white and half black, seeded), as shot and darkened to :data:`DARKER`."""
    from ..media.image import load_image
    from ..pipeline.donor_painter import DonorPainter
    from ..pipeline.donors import skin_lab
    from ..pipeline.models import get_finder

    painter = DonorPainter(tone=copy.deepcopy(model))  # the painter runs its copy in float64
    rng, files = np.random.default_rng(seed), []
    for label in ("0", "1"):  # as many of each label as there are (up to half the count each)
        some = sorted(p for p in data.glob("*.jpg") if _label(p.name) == label)
        files += [some[i] for i in rng.choice(len(some), min(count // 2, len(some)), replace=False)]
    rows = []
    for path in tqdm(files, desc="checking on faces-utk", unit="photo"):
        rgb = load_image(path).rgb
        row = [float(path.name.split("_")[2] == "1")]
        for gain in (1.0, DARKER):
            img = (rgb.astype(np.float32) * gain).round().clip(0, 255).astype(np.uint8)
            faces = sorted(get_finder().find(img), key=lambda f: -f.width)
            mesh = painter.plan(img, faces[0])[1] if faces else None
            if mesh is None:
                break
            row += [float(skin_lab(img, mesh)[0]), painter.lightness(painter.describe(img, faces[0], even_light=True))]
        if len(row) == 5:
            rows.append(row)
    r = np.array(rows)
    black = r[:, 0] == 1
    out = [f"faces-utk check: {len(r)} faces aged 13 and up ({int(black.sum())} labelled black)"]
    for name, col in (("read from the photo", 1), ("predicted (SkinTone)", 2)):
        out.append(
            f"  {name}: labelled white {r[~black, col].mean():.1f} L*, black {r[black, col].mean():.1f}; "
            f"AUC white above black {_auc(r[~black, col], r[black, col]):.3f}; darkened to {DARKER}, each face "
            f"reads {np.mean(shift := r[:, col] - r[:, col + 2]):.1f} L* darker (median {np.median(shift):.1f})"
        )
    return out


#: the picture's exposures (a gain on the pixels) and passwords
PICTURE_GAINS = (1.0, 0.55, 0.35)
PICTURE_PASSWORDS = ("correct horse battery staple", "Tr0ub4dor&3")


def _photo_read_painter() -> DonorPainter:
    """A donor painter that draws as until 2026-12-06: by the skin's L* read from the photo."""
    from ..pipeline.donor_painter import DonorPainter

    class PhotoRead(DonorPainter):
        def draw_weights(
            self,
            rgb: np.ndarray,
            mesh: np.ndarray | None,
            descriptor: np.ndarray | None,
            even: np.ndarray | None = None,
        ) -> np.ndarray:
            return super().draw_weights(rgb, mesh, descriptor)  # no even descriptor: the photo's reading

    return PhotoRead()


def _caption(tile: Image.Image, text: str) -> Image.Image:
    if text:
        draw = ImageDraw.Draw(tile)
        draw.rectangle([0, 146, 159, 159], fill=(0, 0, 0))
        draw.text((3, 147), text, fill=(255, 255, 255))
    return tile


def picture(dest: Path, samples: Path) -> None:
    """The astronaut of ``samples`` as shot and darker (:data:`PICTURE_GAINS`), each beside the surrogates
    two passwords give when the draw takes the skin's L* read from the photo (as until 2026-12-06) and as
    shipped (the lighter of that and the head's reading); captioned with both readings. The painter is
    given each password's seed as it is (the API also mixes in a digest of the photo's pixels, which
    would give each exposure other donors and hide the change)."""
    from ..media.image import load_image
    from ..pipeline.donor_painter import DonorPainter
    from ..pipeline.donors import skin_lab
    from ..pipeline.models import get_finder
    from ..vault.surrogate import SurrogateSeed

    shipped, old = DonorPainter(), _photo_read_painter()
    rgb, sheet = load_image(samples / "astronaut.png").rgb, Image.new("RGB", (5 * 160, 3 * 160), (255, 255, 255))
    for row, gain in enumerate(PICTURE_GAINS):
        img = (rgb.astype(np.float32) * gain).round().clip(0, 255).astype(np.uint8)
        face = max(get_finder().find(img), key=lambda f: f.width)
        cx, cy, half = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2, 0.8 * face.height
        box = (int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half)))
        seeds = [SurrogateSeed.from_password(p) for p in PICTURE_PASSWORDS]
        tiles = [img] + [painter.paint(img, [face], seed)[0] for painter in (old, shipped) for seed in seeds]
        mesh = shipped.plan(img, face)[1]
        read = float(skin_lab(img, mesh)[0]) if mesh is not None else float("nan")
        tone = shipped.lightness(shipped.describe(img, face, even_light=True))
        texts = (f"x{gain}: read {read:.0f} L*", "by the read L*", "", f"shipped; SkinTone {tone:.0f}", "")
        for col, (tile, text) in enumerate(zip(tiles, texts, strict=True)):
            small = Image.fromarray(tile).crop(box).resize((160, 160), Image.Resampling.LANCZOS)
            sheet.paste(_caption(small, text), (col * 160, row * 160))
    sheet.save(dest, optimize=True)
    print(f"wrote {dest}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=Path, default=None, help="the donor pool (python -m anonymizer.train.donor_bank)")
    ap.add_argument("--check", type=Path, default=None, help="also measure on this faces-utk folder")
    ap.add_argument("--check-count", type=int, default=600, help="faces-utk photos to check (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="of the faces-utk sample (default: %(default)s)")
    ap.add_argument("--export", type=Path, default=None, help="write the weights here (safetensors)")
    ap.add_argument(
        "--picture", type=Path, default=None, help="only draw the shipped head's effect on samples/ (PNG) and exit"
    )
    args = ap.parse_args(argv)
    if args.picture is not None:
        picture(args.picture, Path(__file__).resolve().parents[2] / "samples")
        return
    if args.pool is None or not (args.pool / "bank.safetensors").is_file():
        raise SystemExit(f"--pool {args.pool}: not a donor pool (no bank.safetensors); build it first (see --help)")

    from .common import save_weights

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    emb, lightness = describe_pool(args.pool)
    print(pool_report(emb, lightness))
    model = fit(emb, lightness)
    if args.check is not None:
        print("\n".join(check_report(model, args.check, args.check_count, args.seed)))
    if args.export is not None:
        save_weights(
            model.state_dict(),
            args.export,
            "SkinTone on IdentityNet embeddings of the donor pool "
            "(python -m anonymizer.train.skin_tone; see models/skin_tone.md)",
        )


if __name__ == "__main__":
    main()
