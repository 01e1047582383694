"""Faces for the deepfake detector from real video and generated photos: split by person, aligned as the
audit aligns them, written by a command; and the degradations and batches the trainer makes of them."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from anonymizer.nn.surrogate import crop_template
from anonymizer.train.deepfake import _batch, degrade, greyscale_some, restyle, video_fakes
from anonymizer.train.video_faces import clip_faces, held_out, main, person_of, still_faces

ROOT = Path(__file__).resolve().parents[2]


def test_people_and_their_split() -> None:
    # one person in two clips (videos-real/SOURCE.md) gets one key, so both land on one side of the split
    assert person_of("retalking_face_3.mp4") == person_of("sadtalker_ref_video_WDA_AlexandriaOcasioCortez_000.mp4")
    assert person_of("retalking_face_1.mp4") != person_of("retalking_face_2.mp4")
    names = np.array(
        ["spectre_MEAD_M030_level_3", "spectre_MEAD_M003_level_1", "spectre_LRS3_0Fi83BHQsMA_00002", "retalking_face_1"]
    )
    assert held_out(names).tolist() == [True, False, True, False]
    stills = np.array([f"tpdne/{k}.jpg" for k in range(2000)])
    out = held_out(stills)
    assert 0.07 < out.mean() < 0.13 and np.array_equal(out, held_out(stills))  # a fixed tenth


def test_a_still_gives_its_face_aligned_like_the_audit() -> None:
    crops, lms = still_faces(ROOT / "samples" / "grace_hopper.jpg")
    assert len(crops) == 1 and crops[0].shape == (128, 128, 3) and crops[0].dtype == np.uint8
    assert np.abs(lms[0] - crop_template(128)).max() < 4.0  # the landmarks land near the template


def test_a_clip_gives_its_faces_every_kth_frame(tmp_path: Path) -> None:
    from tests.videoclips import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=12, audio=False)
    crops, lms, frames = clip_faces(clip, every=4)
    assert frames == [0, 4, 8] and len(crops) == len(lms) == 3
    # the command writes the same faces with their clip and person, and refuses an empty folder
    out = tmp_path / "faces.npz"
    main(["--videos", str(tmp_path), "--out", str(out), "--every", "4"])
    with np.load(out) as z:
        assert z["crops"].shape == (3, 128, 128, 3) and z["frames"].tolist() == [0, 4, 8]
        assert set(z["clips"]) == {"c.mp4"} and set(z["persons"]) == {"c"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="nothing to read"):
        main(["--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "x.npz")])


def test_degrade_keeps_the_image_but_loses_detail() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    outs = [degrade(img, np.random.default_rng(k)) for k in range(20)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    changed = [float(np.abs(o.astype(int) - img).mean()) for o in outs]
    assert max(changed) > 10 and np.array_equal(degrade(img, np.random.default_rng(3)), outs[3])


def test_batches_mix_video_faces_generated_faces_and_their_fakes() -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(30, 220, (6, 128, 128, 3), dtype=np.uint8)
    lms = np.repeat(crop_template(128)[None], 6, axis=0)
    persons = np.array(["a", "a", "b", "b", "c", "c"])
    video = (crops + 1, lms, persons)
    generated = np.full((3, 128, 128, 3), 7, np.uint8)
    fakes = video_fakes(crops, lms, persons)
    assert set(fakes) == {"video_sbi", "video_swap"} and all(len(v) == 6 for v in fakes.values())
    args = argparse.Namespace(video_share=1.0, generated_share=1.0, degrade=False, restyle=0.0, grey=0.0)
    batch = _batch(4, crops, lms, None, video, generated, args, rng)
    assert batch.shape == (8, 128, 128, 3)
    assert all(any(np.array_equal(r, v) for v in video[0]) for r in batch[:4])  # real: from the video faces
    assert all(np.array_equal(f, generated[0]) for f in batch[4:])  # fakes: all generated at share 1


def test_some_training_images_turn_grey_real_and_fake_alike() -> None:
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (200, 8, 8, 3), dtype=np.uint8)
    out = greyscale_some(batch, 0.5, np.random.default_rng(1))
    grey = np.array([np.array_equal(o[..., 0], o[..., 1]) and np.array_equal(o[..., 1], o[..., 2]) for o in out])
    assert 70 < grey.sum() < 130  # about half, spread over the real and the fake half
    assert grey[:100].any() and grey[100:].any()
    assert np.array_equal(out[~grey], batch[~grey])  # the rest untouched, the input not modified
    luma = batch[grey].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out[grey][..., 0] - luma).max() <= 0.51
    assert np.array_equal(greyscale_some(batch, 0.0, rng), batch)


def test_restyled_faces_keep_their_landmarks_and_their_fakes_are_made_after() -> None:
    lm = crop_template(128).astype(np.float32)
    img = np.full((128, 128, 3), 40, np.uint8)
    for x, y in lm.round().astype(int):
        img[y - 4 : y + 5, x - 4 : x + 5] = 230  # a bright square on each landmark
    moved = 0
    for seed in range(30):
        out, lm2 = restyle(img, lm, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.uint8 and lm2.shape == (5, 2)
        at = np.array([out[int(round(y)), int(round(x))].mean() for x, y in lm2])
        assert (at > out.mean() + 40).all(), seed  # the landmarks still sit on their squares
        moved += not np.allclose(lm2, lm)
    assert 3 <= moved <= 20  # stretched about a third of the time
    rng = np.random.default_rng(0)
    crops = rng.integers(30, 220, (6, 128, 128, 3), dtype=np.uint8)
    lms = np.repeat(lm[None], 6, axis=0)
    args = argparse.Namespace(video_share=0.0, generated_share=0.0, degrade=False, restyle=1.0, grey=0.0)
    batch = _batch(8, crops, lms, None, None, None, args, rng)
    assert not any(np.array_equal(r, c) for r in batch[:8] for c in crops)  # every real face restyled
    plain = argparse.Namespace(video_share=0.0, generated_share=0.0, degrade=False, restyle=0.0, grey=0.0)
    again = _batch(8, crops, lms, None, None, None, plain, np.random.default_rng(5))
    assert all(any(np.array_equal(r, c) for c in crops) for r in again[:8])  # without: as they were
