"""Training the person Mask R-CNN: the dev split is fixed, data load as instance masks, and a tiny run is
seeded, resumable and exports float16 weights that the builder loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anonymizer.train.masks import boxes_of, is_dev, load_pennfudan, main


def test_boxes_of_masks() -> None:
    m = np.zeros((2, 10, 12), bool)
    m[0, 2:5, 3:7] = True
    m[1, 0:10, 11] = True
    np.testing.assert_array_equal(boxes_of(m), [[3, 2, 7, 5], [11, 0, 12, 10]])


def test_pennfudan_split_is_fixed(data_dir: Path) -> None:
    dev = load_pennfudan(data_dir / "pennfudan", dev=True)
    train_names = {p.name for p in (data_dir / "pennfudan" / "PNGImages").glob("*.png") if not is_dev(p.name)}
    assert len(dev) == 24 and len(train_names) == 118 and not train_names & {s.name for s in dev}
    s = dev[0]
    assert s.masks.dtype == bool and s.masks.shape[1:] == s.rgb.shape[:2] and s.masks.any(axis=(1, 2)).all()


@pytest.mark.slow
def test_masks_training_resumes_and_exports(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    from anonymizer.nn.masks import person_maskrcnn

    common = [
        "--data",
        str(data_dir / "pennfudan"),
        "--out",
        str(tmp_path / "run"),
        "--limit",
        "2",
        "--epochs",
        "2",
        "--eval-every",
        "2",
        "--seed",
        "1",
        "--device",
        "cpu",
        "--export",
        str(tmp_path / "w.safetensors"),
    ]
    main([*common, "--stop-after", "1"])
    assert (tmp_path / "run" / "last.pt").is_file() and not (tmp_path / "w.safetensors").exists()
    main(common)
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch 2: dev mask AP50" in out
    state = load_file(str(tmp_path / "w.safetensors"))
    assert state["backbone.body.features.0.conv.weight"].dtype == torch.float16
    model = person_maskrcnn(weights=None)
    model.load_state_dict({k: v.float() for k, v in state.items()})
