"""anonymizer.train.attributes: labels from faces-utk names, and a fit that learns what the labels say."""

from __future__ import annotations

import numpy as np
import torch

from anonymizer.train.attributes import age_band, fit, labels, report


def test_labels_come_from_faces_utk_names() -> None:
    names = np.array(["23_1_0_2017.jpg.chip.jpg", "4_0_2_2016.jpg.chip.jpg", "odd.jpg", "30_x_1.jpg"])
    age, sex = labels(names)
    assert age.tolist() == [23, 4, -1, -1] and sex.tolist() == [1, 0, -1, -1]
    assert age_band(np.array([0, 3, 4, 12, 13, 19, 20, 59, 60, 99])).tolist() == [0, 0, 1, 1, 2, 2, 3, 6, 7, 7]


def test_fit_learns_sex_and_age_from_separable_embeddings() -> None:
    rng = np.random.default_rng(0)
    n = 600
    sex = rng.integers(0, 2, n)
    age = rng.integers(1, 90, n)
    emb = rng.normal(0, 1, (n, 128)).astype(np.float32)
    emb[:, 0] += 3 * (2 * sex - 1)  # one direction for sex, one for age
    emb[:, 1] += (age - 45) / 10
    model = fit(emb, sex, age_band(age), steps=300, lr=1e-2, seed=0)
    with torch.inference_mode():
        female, years = (t.numpy() for t in model.predict(torch.from_numpy(emb)))
    assert ((female > 0.5) == (sex == 1)).mean() > 0.95
    assert np.corrcoef(years, age)[0, 1] > 0.8
    lines = report(model, emb, age, sex)
    assert lines[1].startswith("sex right: ") and "13 and up" in lines[1]


def test_picture_captions_every_sample_face_of_40_px(tmp_path) -> None:  # noqa: ANN001
    from pathlib import Path

    from PIL import Image

    from anonymizer.train.attributes import picture

    dest = tmp_path / "looks.png"
    picture(dest, Path(__file__).resolve().parents[2] / "samples")
    with Image.open(dest) as im:
        # 17 faces of at least 40 px in samples/ (2 portraits, 15 at Solvay): three rows of six, one white tile
        assert im.size == (6 * 128, 3 * 128)
        sheet = np.asarray(im)
    assert sheet[-128:, -128:].min() == 255 and sheet[-128:, -256:-128].std() > 10
