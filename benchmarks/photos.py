"""Photo throughput: our full anonymize path against deface's, on the same photos, in one run.

    python benchmarks/photos.py [--repeat 3] [--threads N] [PHOTO_OR_FOLDER ...]

Default photos: samples/ plus, when present, ../shared/data/dlib-faces. Both tools run end to end per
photo (read, detect, cover with a solid fill, write) in this process with the same thread count;
deface uses onnxruntime at its defaults (threshold 0.2, mask scale 1.3). Prints per-tool seconds per
photo (median of --repeat runs) and the ratio. Ours is timed twice: with the default multi-scale plan
(full-size pass + 2x pass for small faces + reduced pass for large ones) and with one full-size pass
(--upscale 0, the same work deface does).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

from _data import DLIB, ROOT

from anonymizer.media.files import write_atomic
from anonymizer.media.image import IMAGE_SUFFIXES, encode_image, load_image
from anonymizer.nn.runtime import configure_runtime
from anonymizer.pipeline.photo import FaceFinder, cover_faces


def photos(args: list[str]) -> list[Path]:
    roots = [Path(a) for a in args] or [ROOT / "samples", DLIB]
    out: list[Path] = []
    for r in roots:
        if r.is_dir():
            out += sorted(p for p in r.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif r.is_file():
            out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    threads = configure_runtime(args.threads)
    files = photos(args.inputs)
    if not files:
        raise SystemExit("no photos found")

    import onnxruntime
    from deface.centerface import CenterFace
    from deface.deface import image_detect

    onnxruntime.set_default_logger_severity(3)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = CenterFace(backend="onnxrt")

    finders = {"ours (default)": FaceFinder(), "ours (one pass)": FaceFinder(upscale=0, downscale_side=0)}
    mp = sum(load_image(f).rgb.shape[0] * load_image(f).rgb.shape[1] for f in files) / 1e6
    print(f"{len(files)} photos, {mp:.1f} MP in all, {threads} threads, median of {args.repeat} runs")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def run_ours(finder: FaceFinder) -> float:
            t = time.perf_counter()
            for f in files:
                img = load_image(f)
                faces = finder.find(img.rgb)
                img.rgb, _, _ = cover_faces(img.rgb, faces)
                write_atomic(out / f"ours{f.suffix}", encode_image(img, format=f.suffix))
            return time.perf_counter() - t

        def run_deface() -> float:
            t = time.perf_counter()
            for f in files:
                image_detect(
                    str(f), str(out / f"deface{f.suffix}"), theirs, 0.2, "solid", 1.3, True, False, False, False
                )
            return time.perf_counter() - t

        run_deface()  # warm-up both
        for finder in finders.values():
            run_ours(finder)
        times = {"deface 1.5.0": statistics.median(run_deface() for _ in range(args.repeat))}
        for name, finder in finders.items():
            times[name] = statistics.median(run_ours(finder) for _ in range(args.repeat))

    base = times["deface 1.5.0"]
    for name, secs in times.items():
        print(
            f"{name:16s} {secs / len(files) * 1000:8.1f} ms/photo   {len(files) / secs:6.2f} photos/s   speed vs "
            f"deface {base / secs:5.2f}x"
        )


if __name__ == "__main__":
    main()
