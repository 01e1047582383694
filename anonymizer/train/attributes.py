"""Train FaceAttributes: rough sex and age from IdentityNet embeddings (models/face_attributes.md).

    python -m anonymizer.train.attributes --data ../shared/data/faces-utk --export models/face_attributes.safetensors

faces-utk names carry each face's age and sex (``<age>_<sex>_<race>_...``, sex 0 male, 1 female). Every
crop is aligned by our detector's five landmarks (:func:`anonymizer.train.faces.prepare_faces`) and
described by IdentityNet (the shipped ``identity_net`` weights, as the donor painter runs them); the
embeddings are cached in ``--out`` (``embeddings.npz``), so a rerun resumes from them. Then a linear head
(:class:`anonymizer.nn.attributes.FaceAttributes`) is fitted on the training faces, full batch (AdamW,
seeded): binary cross-entropy for sex plus cross-entropy over the age bands. The held-out tenth is never
trained on; the printed metrics are measured on it, and with ``--bank`` also on the donor bank's faces
whose sex the source records (generated-photos: a different kind of face, made by a GAN).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..nn.attributes import AGE_BANDS, FaceAttributes
from .embedding import embed_crops


def labels(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(age in years, sex: 1 female, 0 male, -1 unknown) from faces-utk file names."""
    age, sex = np.full(len(names), -1), np.full(len(names), -1)
    for k, name in enumerate(names):
        parts = str(name).split("_")
        if len(parts) > 2 and parts[0].isdigit() and parts[1] in ("0", "1"):
            age[k], sex[k] = int(parts[0]), int(parts[1])
    return age, sex


def age_band(age: np.ndarray) -> np.ndarray:
    """The index of each age's band in :data:`AGE_BANDS`."""
    return np.digitize(age, AGE_BANDS[1:])


def embed_faces(data: Path, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings [N, 128] with NaN rows where no face was found, file names [N], held-out flags [N]) of
    every faces-utk crop, read from ``cache`` when it holds them."""
    from ..nn.identity import IDENTITY_CROP
    from ..ops.align import align_face
    from .faces import prepare_faces

    fs = prepare_faces(data, with_dlib=False)
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["names"]) == list(fs.names):
            return z["embeddings"], fs.names, fs.held_out
    found = np.flatnonzero(np.isfinite(fs.landmarks).all((1, 2)))
    crops = [align_face(fs.load_rgb(int(i)), fs.landmarks[i], size=IDENTITY_CROP) for i in found]
    emb = np.full((len(fs), 128), np.nan, np.float32)
    emb[found] = embed_crops(crops)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, embeddings=emb, names=fs.names)
    tmp.replace(cache)
    return emb, fs.names, fs.held_out


def fit(emb: np.ndarray, sex: np.ndarray, band: np.ndarray, *, steps: int, lr: float, seed: int) -> FaceAttributes:
    """The head fitted on ``emb`` [N, 128] with ``sex`` (0/1) and age ``band`` labels, full batch."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    model = FaceAttributes()
    x = torch.from_numpy(emb).float()
    model.get_buffer("centre").copy_(x.mean(0))
    model.get_buffer("scale").copy_(x.std(0).clamp_min(1e-6))
    y_sex, y_band = torch.from_numpy(sex).float(), torch.from_numpy(band).long()
    opt = torch.optim.AdamW(model.head.parameters(), lr=lr, weight_decay=1e-3)
    bar = tqdm(range(steps), desc="fitting", unit="step")
    for _ in bar:
        out = model(x)
        loss = F.binary_cross_entropy_with_logits(out[:, 0], y_sex) + F.cross_entropy(out[:, 1:], y_band)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()


def report(model: FaceAttributes, emb: np.ndarray, age: np.ndarray, sex: np.ndarray) -> list[str]:
    """Lines of held-out metrics: sex accuracy, age-band accuracy, mean absolute age error, children."""
    with torch.inference_mode():
        female, years = (t.numpy() for t in model.predict(torch.from_numpy(emb).float()))
        bands = model(torch.from_numpy(emb).float())[:, 1:].argmax(1).numpy()
    right = (female > 0.5) == (sex == 1)
    adult = age >= 13
    return [
        f"held-out faces: {len(emb)} ({int(adult.sum())} aged 13 and up)",
        f"sex right: {right.mean():.1%} (13 and up: {right[adult].mean():.1%}; under 13: {right[~adult].mean():.1%})",
        f"age band right: {(bands == age_band(age)).mean():.1%}; mean absolute age error "
        f"{np.abs(years - age).mean():.1f} "
        f"years (13 and up: {np.abs(years - age)[adult].mean():.1f})",
        f"under 13 predicted under 13: {(years[~adult] < 13).mean():.1%}; 20 and up predicted under 13: "
        f"{(years[age >= 20] < 13).mean():.1%}",
    ]


def bank_report(model: FaceAttributes, bank_dir: Path) -> str:
    """Sex accuracy on the donor bank's faces whose sex the source records (read as the selection step
    reads donors, :func:`anonymizer.train.donor_spread.donor_looks`)."""
    import copy

    from ..pipeline.donors import SEXES, DonorBank
    from .donor_spread import donor_looks

    bank = DonorBank.load(bank_dir)
    sexes = bank.codes["sex"]
    known = np.array([i for i in range(len(bank)) if SEXES[sexes[i]] in ("female", "male")])
    female = donor_looks(bank, known, copy.deepcopy(model))[0]  # a copy: the model is exported in float32
    truth = np.array([SEXES[sexes[i]] == "female" for i in known])
    right = ((female > 0.5) == truth).mean()
    return f"donor bank ({bank_dir}): sex right for {right:.1%} of {len(known)} donors with a recorded sex"


def picture(dest: Path, samples: Path) -> None:
    """A sheet of the public-domain faces of ``samples`` (at least 40 px tall), each captioned with what
    the shipped head reads (as the donor painter does: float64 descriptor)."""
    from PIL import Image, ImageDraw

    from ..media.image import load_image
    from ..pipeline.donor_painter import DonorPainter
    from ..pipeline.models import get_finder

    painter, tiles = DonorPainter(), []
    for name in ("astronaut.png", "grace_hopper.jpg", "group_solvay_1927_closeup.jpg"):
        rgb = load_image(samples / name).rgb
        for face in sorted(get_finder().find(rgb), key=lambda f: f.box[0]):
            if face.height < 40:
                continue
            female, age = painter.looks(painter.describe(rgb, face))
            cx, cy, half = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2, 0.7 * face.height
            box = (int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half)))
            tile = Image.fromarray(rgb).crop(box).resize((128, 128), Image.Resampling.LANCZOS)
            draw = ImageDraw.Draw(tile)
            draw.rectangle([0, 114, 127, 127], fill=(0, 0, 0))
            draw.text((3, 115), f"female {female:.2f}, {age:.0f} y", fill=(255, 255, 255))
            tiles.append(tile)
    columns = 6
    sheet = Image.new("RGB", (columns * 128, -(-len(tiles) // columns) * 128), (255, 255, 255))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % columns) * 128, (k // columns) * 128))
    sheet.save(dest, optimize=True)
    print(f"wrote {dest} ({len(tiles)} faces)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=Path("../shared/data/faces-utk"), help="faces-utk folder (default: %(default)s)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("runs/attributes"),
        help="cache folder for the embeddings (default: %(default)s)",
    )
    ap.add_argument("--steps", type=int, default=600, help="full-batch AdamW steps (default: %(default)s)")
    ap.add_argument("--lr", type=float, default=1e-2, help="default: %(default)s")
    ap.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    ap.add_argument("--bank", type=Path, default=None, help="also check sex on this donor bank (e.g. models/donors)")
    ap.add_argument("--export", type=Path, default=None, help="write the weights here (safetensors)")
    ap.add_argument(
        "--picture",
        type=Path,
        default=None,
        help="only draw the shipped head's reading of the faces in samples/ (PNG) and exit",
    )
    args = ap.parse_args(argv)
    if args.picture is not None:
        picture(args.picture, Path(__file__).resolve().parents[2] / "samples")
        return
    if args.steps < 1:
        raise SystemExit("--steps must be >= 1")

    from .common import save_weights

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    emb, names, held = embed_faces(args.data, args.out / "embeddings.npz")
    age, sex = labels(names)
    ok = np.isfinite(emb).all(1) & (sex >= 0)
    train, test = ok & ~held, ok & held
    model = fit(emb[train], sex[train], age_band(age[train]), steps=args.steps, lr=args.lr, seed=args.seed)
    print("\n".join(report(model, emb[test], age[test], sex[test])))
    if args.bank is not None:
        print(bank_report(model, args.bank))
    if args.export is not None:
        save_weights(
            model.state_dict(),
            args.export,
            "FaceAttributes on IdentityNet embeddings of faces-utk "
            "(python -m anonymizer.train.attributes; see models/face_attributes.md)",
        )


if __name__ == "__main__":
    main()
