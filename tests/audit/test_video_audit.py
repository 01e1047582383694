"""Auditing videos: faces still visible are followed as tracks with a synthetic score over frames, covered
faces pass, leaking container tags fail, and the CLI writes tracks into the JSON and HTML reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from videoclips import make_clip  # noqa: E402

from anonymizer.audit.video import audit_video  # noqa: E402
from anonymizer.cli.app import app  # noqa: E402
from anonymizer.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "walk.mp4", frames=12)


@pytest.fixture(scope="module")
def scorer():
    from anonymizer.api import get_deepfake_scorer

    return get_deepfake_scorer()


def test_a_visible_face_is_one_track_with_scores(clip, finder, scorer) -> None:
    res = audit_video(clip, finder=finder, deepfake=scorer, every=3, keep_images=True)
    assert res.frames == 12 and res.verdict == "fail"
    assert res.tracks is not None and len(res.tracks) == 1
    track = res.tracks[0]
    assert track["first_frame"] == 0 and track["last_frame"] == 9 and track["frames_found"] == 4
    assert track["visible"] and track["score"] >= 0.5
    assert 0 <= track["synthetic"] <= track["synthetic_max"] <= 1
    assert track["synthetic_flagged"] is (track["synthetic"] >= scorer.threshold)  # judged by the track's mean
    assert res.track_crops[track["track"]].ndim == 3
    doc = res.to_dict()
    assert doc["kind"] == "video" and doc["tracks"] == res.tracks and "crop" not in json.dumps(doc)
    assert doc["synthetic_threshold"] == scorer.threshold


def test_covered_faces_pass_and_leaking_tags_fail(clip, finder, tmp_path) -> None:
    import av

    from anonymizer.pipeline.video import anonymize_video

    out = tmp_path / "covered.mp4"
    anonymize_video(clip, out, finder=finder)
    res = audit_video(out, finder=finder)
    assert res.verdict == "pass", res.reasons
    assert res.tracks == [] and not res.vault["present"]
    tagged = tmp_path / "tagged.mp4"
    with av.open(str(out)) as src, av.open(str(tagged), "w") as dst:
        dst.metadata["location"] = "+48.8577+002.2950/"
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        for packet in src.demux(vin):
            if packet.dts is not None:
                packet.stream = vout
                dst.mux(packet)
    res = audit_video(tagged, finder=finder)
    assert res.verdict == "fail" and any(leak.kind == "gps" for leak in res.leaks)


def test_bad_videos(tmp_path, finder) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(InputError, match="bad.mp4"):
        audit_video(bad, finder=finder)


def test_audit_command_with_photos_and_videos(clip, samples, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "walk.mp4").write_bytes(clip.read_bytes())
    (src / "hopper.jpg").write_bytes((samples / "grace_hopper.jpg").read_bytes())
    r = CliRunner().invoke(
        app, ["audit", str(src), "--every", "4", "--json", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html")]
    )
    assert r.exit_code == 1  # both still show a face
    doc = json.loads((tmp_path / "a.json").read_text())
    rows = {Path(f["path"]).name: f for f in doc["files"]}
    assert rows["walk.mp4"]["kind"] == "video" and rows["walk.mp4"]["frames"] == 12
    assert len(rows["walk.mp4"]["tracks"]) == 1 and "synthetic" in rows["walk.mp4"]["tracks"][0]
    assert "tracks" not in rows["hopper.jpg"] and rows["hopper.jpg"]["faces"]
    assert "track 0: frames 0-8" in (tmp_path / "a.html").read_text()


def test_with_its_original_a_covered_video_passes_and_a_copy_fails(clip, finder, tmp_path) -> None:
    from anonymizer.pipeline.video import anonymize_video

    out = tmp_path / "covered.mp4"
    anonymize_video(clip, out, finder=finder)
    res = audit_video(out, finder=finder, original=clip, every=3, keep_images=True)
    assert res.verdict == "pass", res.reasons
    assert res.original == str(clip) and len(res.identity) == 1
    row = res.identity[0]
    assert (
        row["first_frame"] == 0
        and row["last_frame"] == 9
        and not row["recognisable"]
        and row["frames_recognisable"] == 0
    )
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(clip.read_bytes())  # "anonymized" by copying
    res = audit_video(copy, finder=finder, original=clip, every=3, keep_images=True)
    assert res.verdict == "fail" and res.identity[0]["recognisable"] and res.identity[0]["frames_recognisable"] == 4
    reason = next(r for r in res.reasons if "recognisable" in r)
    box = "[" + ", ".join(f"{v:.0f}" for v in res.identity[0]["box"]) + "]"
    assert "track 0 (frames 0-9)" in reason and f"at {box} on frame {res.identity[0]['frame']}" in reason
    orig, shown = res.identity_crops[0]
    assert orig.shape == shown.shape and orig.ndim == 3


def test_through_the_vault_and_with_a_wrong_key(clip, finder, tmp_path) -> None:
    from anonymizer.pipeline.video import anonymize_video
    from anonymizer.vault.keys import Key

    params = {"t": 2, "m": 19456, "p": 1}
    out = tmp_path / "sealed.mp4"
    anonymize_video(clip, out, finder=finder, key=Key.from_password("a passphrase long enough", kdf_params=params))
    res = audit_video(out, finder=finder, key=Key.from_password("a passphrase long enough"), every=3)
    assert res.verdict == "pass", res.reasons
    assert res.original == "restored through the key" and res.vault == {"present": True, "opens": True}
    assert len(res.identity) == 1 and not res.identity[0]["recognisable"]
    res = audit_video(out, finder=finder, key=Key.from_password("wrong"), every=3)
    assert res.verdict == "fail" and res.vault["opens"] is False and not res.identity


def test_an_original_of_another_length_is_refused(clip, finder, tmp_path) -> None:
    short = make_clip(tmp_path / "short.mp4", frames=6)
    with pytest.raises(InputError, match="as many frames as its original"):
        audit_video(clip, finder=finder, original=short)


def test_audit_command_clears_a_default_video_with_its_original(clip, tmp_path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "walk.mp4").write_bytes(clip.read_bytes())
    assert CliRunner().invoke(app, ["anonymize", str(src), "-o", str(out)]).exit_code == 0
    alone = CliRunner().invoke(app, ["audit", str(out), "--every", "3"])
    assert alone.exit_code == 0, alone.output  # the covered face is not found again
    r = CliRunner().invoke(
        app, ["audit", str(out), "--originals", str(src), "--every", "3", "--html", str(tmp_path / "a.html")]
    )
    assert r.exit_code == 0, r.output
    page = (tmp_path / "a.html").read_text()
    assert "<figcaption>original</figcaption>" in page and "<figcaption>output</figcaption>" in page
    leaked = CliRunner().invoke(app, ["audit", str(src), "--originals", str(src), "--every", "3"])
    assert leaked.exit_code == 1 and "is still recognisable on 4 searched frame(s)" in leaked.stdout
