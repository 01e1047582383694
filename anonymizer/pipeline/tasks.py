"""One file of `detect`, `enhance` and `restore`: the work each runs per planned file, returning the file's
JSON row (the batch functions of :mod:`anonymizer.pipeline.runner` run them over a folder)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..media.files import write_atomic, write_private
from ..media.image import LoadedImage, encode_image, load_image
from ..media.video import probe
from ..vault.images import restore_file
from ..vault.keys import Identity, Key
from .batch import Job, remove_stale_parts


def detect_job(job: Job, *, targets: tuple[str, ...], threshold: float, upscale: float) -> dict[str, object]:
    """Faces (and persons, plates) of one photo: its row (width, height, faces[, persons, masks, plates]); with
    persons and ``job.dest``, their instance ids written there as an 8-bit grey PNG (0 = background, k =
    person k)."""
    from .models import get_finder, get_plate_finder, get_segmenter
    from .persons import instance_image

    if job.is_video:
        return detect_video_job(job, targets=targets, threshold=threshold)
    img = load_image(job.src)
    row: dict[str, object] = {"path": str(job.src), "width": img.width, "height": img.height}
    if "face" in targets:
        row["faces"] = [f.to_dict() for f in get_finder(threshold=threshold, upscale=upscale).find(img.rgb)]
    if "person" in targets:
        persons = get_segmenter().segment(img.rgb)
        row["persons"] = [p.to_dict() for p in persons]
        if job.dest is not None:
            buf = io.BytesIO()
            Image.fromarray(instance_image(persons, (img.height, img.width)).astype(np.uint8)).save(buf, format="PNG")
            write_atomic(job.dest, buf.getvalue())
            row["masks"] = str(job.dest)
    if "plate" in targets:
        row["plates"] = [p.to_dict() for p in get_plate_finder().find(img.rgb)]
    return row


def detect_video_job(job: Job, *, targets: tuple[str, ...], threshold: float) -> dict[str, object]:
    """A video's tracks (:func:`~anonymizer.pipeline.video.detect_video`) at the video defaults (faces: one
    full-size pass at ``threshold`` every :data:`~anonymizer.defaults.DEFAULT_DETECT_EVERY` frames); with
    persons and ``job.dest``, their masks in the folder ``job.dest`` less its suffix."""
    from ..defaults import DEFAULT_DETECT_EVERY
    from .jobs import video_finders
    from .video import detect_video

    finders = video_finders(targets, threshold, 0.0)
    masks = job.dest.with_suffix("") if job.dest is not None and "person" in targets else None
    return detect_video(job.src, finders=finders, detect_every=DEFAULT_DETECT_EVERY, masks_dir=masks)


def enhance_job(job: Job, *, model: str, scale: int) -> dict[str, object]:
    """One photo super-resolved into ``job.dest`` (PNG, its alpha enlarged alongside)."""
    from .enhance import enhance_array

    assert job.dest is not None
    img = load_image(job.src)
    sr = enhance_array(img.rgb, model=model, scale=scale)
    alpha = None
    if img.alpha is not None:
        alpha = np.asarray(Image.fromarray(img.alpha).resize((sr.shape[1], sr.shape[0]), Image.Resampling.BICUBIC))
    out = LoadedImage(rgb=sr, alpha=alpha, icc_profile=img.icc_profile)
    write_atomic(job.dest, encode_image(out, format="png"))
    return {"path": str(job.src), "output": str(job.dest), "width": sr.shape[1], "height": sr.shape[0]}


def restore_job(job: Job, *, key: Key | Identity, progress: bool = False) -> dict[str, object]:
    """One anonymized file's originals put back: a photo into ``job.dest`` (PNG), a video beside it in its
    own container; both readable by their owner only (they show the original faces)."""
    assert job.dest is not None
    if job.is_video:
        from tqdm import tqdm

        from .video import restore_video

        dest = job.dest.with_suffix(job.src.suffix)
        remove_stale_parts(dest)
        total = probe(job.src).expected_frames()
        with tqdm(total=total, desc=job.src.name, unit="frame", disable=not progress, leave=False) as bar:
            regions = restore_video(job.src, dest, key, progress=bar.update)
        return {"path": str(job.src), "output": str(dest), "regions": regions}
    restored = restore_file(job.src, key)
    out = LoadedImage(rgb=restored.image, alpha=restored.alpha, icc_profile=restored.source.icc_profile)
    write_private(job.dest, encode_image(out, format="png"))
    return {"path": str(job.src), "output": str(job.dest), "regions": restored.regions}
