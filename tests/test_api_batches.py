"""The facade beyond single photos: videos, folders on this machine, restore and audit, as a Python user
calls them (the CLI is a thin layer over these)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from videoclips import decode, make_clip  # noqa: E402

from anonymizer import api
from anonymizer.errors import InputError  # noqa: E402

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def key() -> api.Key:
    return api.Key.from_password(PASSWORD)


def test_a_video_round_trip_through_the_api(tmp_path: Path, key: api.Key) -> None:
    clip = make_clip(tmp_path / "walk.mp4", frames=9, audio=False)
    out, back = tmp_path / "out" / "walk.mp4", tmp_path / "back" / "walk.mp4"
    out.parent.mkdir()
    counted: list[int] = []
    report = api.anonymize_video(
        clip, out, api.AnonymizeOptions(detect_every=2, lossless=True), key=key, progress=counted.append
    )
    assert report.frames == 9 == sum(counted) and report.tracks >= 1 and report.frames_covered >= 8
    before, after = decode(clip)[0], decode(out)[0]
    assert len(before) == len(after) == 9
    assert all(np.abs(a.astype(int) - b).mean() > 2 for a, b in zip(before, after, strict=True))  # faces covered
    back.parent.mkdir()
    api.restore_video(out, back, key)
    # the original file itself when it is smaller than its sealed regions, else every frame as decoded
    assert back.read_bytes() == clip.read_bytes() or all(
        np.array_equal(a, b) for a, b in zip(before, decode(back)[0], strict=True)
    )
    persons = api.anonymize_video(clip, tmp_path / "x.mp4", api.AnonymizeOptions(targets=("face", "person")))
    assert persons.frames == 9 and persons.tracks >= 1 and persons.person_tracks >= 0  # videos take persons too
    with pytest.raises(InputError, match="surrogate faces replace faces only"):
        api.anonymize_video(clip, tmp_path / "y.mp4", api.AnonymizeOptions(targets=("person",), method="surrogate"))


def test_folders_are_anonymized_restored_and_audited(tmp_path: Path, samples: Path, key: api.Key) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("grace_hopper.jpg", "astronaut.png"):
        (src / name).write_bytes((samples / name).read_bytes())
    (src / "notes.txt").write_text("not a photo")
    planned = api.plan_files([src], tmp_path / "out")
    assert [j.src.name for j in planned.jobs] == ["astronaut.png", "grace_hopper.jpg"] and planned.skipped
    rows: list[dict] = []
    report = api.anonymize_files(
        planned.jobs, str(tmp_path / "out"), api.AnonymizeOptions(), key=key, on_result=lambda j, r, e: rows.append(r)
    )
    assert len(report.done) == 2 and not report.failed and all(r["faces"] >= 1 for r in rows)
    restored = api.restore_files(api.plan_files([tmp_path / "out"], tmp_path / "back", fmt="png").jobs, key)
    assert len(restored.done) == 2
    audit = api.audit_files([str(tmp_path / "out")], originals=str(src), recognizer="identity_net")
    assert audit.files == 2 and audit.failed == 0, [r.reasons for r in audit.results]
    doc = [r.to_dict() for r in audit.results]
    assert json.dumps(doc) and all(d["verdict"] == "pass" for d in doc)


def test_a_wrong_key_restores_nothing_and_says_so(tmp_path: Path, samples: Path, key: api.Key) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "g.jpg").write_bytes((samples / "grace_hopper.jpg").read_bytes())
    api.anonymize_files(api.plan_files([src], tmp_path / "out").jobs, tmp_path / "out", api.AnonymizeOptions(), key=key)
    wrong = api.Key.from_password("another long password entirely")
    report = api.restore_files(api.plan_files([tmp_path / "out"], tmp_path / "back", fmt="png").jobs, wrong)
    assert not report.done and "wrong password or key" in report.failed[0][1]
    assert not (tmp_path / "back").exists() or not any((tmp_path / "back").iterdir())
