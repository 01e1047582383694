"""4x face super-resolution: PSNR, SSIM and identity distance against bicubic on held-out faces.

    python benchmarks/sr.py [--limit N] [--models srresnet srgan]

Faces: the fixed held-out tenth of ../shared/data/faces-utk (never trained on). Input: PIL's bicubic 4x
reduction of the 200x200 crop (50x50); each method brings it back to 200x200. PSNR over all RGB
channels (8-bit outputs); SSIM on the luma (Gaussian window 11, sigma 1.5); identity: dlib's descriptor
distance between the output and the original (at the original's face), mean over faces.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from _data import DATA, ROOT, require
from PIL import Image
from tqdm import tqdm

from anonymizer.nn.runtime import configure_runtime
from anonymizer.pipeline.enhance import enhance_array
from anonymizer.train.faces import prepare_faces
from anonymizer.train.sr import lowres


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    def luma(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])

    x, y = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(m[5:-5, 5:-5].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="at most N held-out faces (default: all)")
    ap.add_argument("--models", nargs="*", default=["srresnet", "srgan"], help="default: %(default)s")
    ap.add_argument("--no-identity", action="store_true", help="skip the dlib distances")
    ap.add_argument(
        "--picture", default=None, help="write LR / bicubic / models / original for 6 faces from samples/ to this PNG"
    )
    args = ap.parse_args()
    configure_runtime(2)
    from anonymizer.weights import WeightsError, get_weights, is_ready

    models = []
    for m in args.models:
        try:
            if is_ready(get_weights(m)):
                models.append(m)
                continue
        except WeightsError:
            pass
        print(f"{m}: no weights in models/, skipped")
    rec = None
    if not args.no_identity:
        from anonymizer.audit.recognizers import DlibRecognizer, distance

        rec = DlibRecognizer()
    fs = prepare_faces(require(DATA / "faces-utk"))
    idx = np.flatnonzero(fs.held_out & np.isfinite(fs.descriptors).all(1))[: args.limit]
    methods = ["bicubic", "lanczos", *models]
    scores: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
    rows_for_picture = []
    for i in tqdm(idx, desc="faces", unit="face"):
        hr = fs.load_rgb(i)
        lr = lowres(hr)
        outs = {
            "bicubic": np.asarray(Image.fromarray(lr).resize(hr.shape[1::-1], Image.BICUBIC)),
            "lanczos": np.asarray(Image.fromarray(lr).resize(hr.shape[1::-1], Image.LANCZOS)),
        }
        for m in models:
            outs[m] = enhance_array(lr, model=m)
        for m, out in outs.items():
            d = distance(fs.descriptors[i], rec.embed(out, fs.face(i))) if rec is not None else float("nan")
            scores[m].append((psnr(out, hr), ssim(out, hr), d))
    print(f"faces-utk held-out: {len(idx)} faces, 50x50 -> 200x200")
    print("| method | PSNR (dB) | SSIM (luma) | dlib distance to the original |")
    print("|---|---|---|---|")
    for m in methods:
        a = np.asarray(scores[m])
        print(f"| {m} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.4f} | {np.nanmean(a[:, 2]):.3f} |")
    if args.picture:
        # drawn on the public-domain photos in samples/: no research data goes into the repository
        for hr in sample_faces(6):
            lr = lowres(hr)
            cols = [
                np.asarray(Image.fromarray(lr).resize(hr.shape[1::-1], Image.NEAREST)),
                np.asarray(Image.fromarray(lr).resize(hr.shape[1::-1], Image.BICUBIC)),
                *(enhance_array(lr, model=m) for m in models),
                hr,
            ]
            rows_for_picture.append(np.concatenate(cols, axis=1))
        Image.fromarray(np.concatenate(rows_for_picture, axis=0)).save(args.picture)
        print(f"picture: {args.picture} (faces from samples/; columns: LR, bicubic, {', '.join(models)}, original)")


def sample_faces(n: int) -> list[np.ndarray]:
    """200x200 crops around the largest faces our detector finds in samples/ (public domain)."""
    from anonymizer.api import get_finder
    from anonymizer.media.image import load_image

    found = []
    for path in sorted((ROOT / "samples").glob("*.[jp][pn]g")):
        rgb = load_image(path).rgb
        for f in get_finder().find(rgb):
            found.append((f.width, rgb, f.box))
    crops = []
    for _, rgb, (x1, y1, x2, y2) in sorted(found, key=lambda t: -t[0])[:n]:
        cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.6
        box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
        crops.append(np.asarray(Image.fromarray(rgb).crop(box).resize((200, 200), Image.LANCZOS)))
    return crops


if __name__ == "__main__":
    main()
