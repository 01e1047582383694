"""Videos through the real detector: frames, timestamps, audio, rotation, spans, tracking, vault."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from videoclips import decode, face_centre, make_clip  # noqa: E402

from anonymizer import Key, VaultIntegrityError, WrongKeyError  # noqa: E402
from anonymizer.api import get_finder  # noqa: E402
from anonymizer.errors import InputError  # noqa: E402
from anonymizer.pipeline.options import AnonymizeOptions  # noqa: E402
from anonymizer.pipeline.tracking import FaceTracker, scene_cut  # noqa: E402
from anonymizer.pipeline.video import anonymize_video, restore_video  # noqa: E402
from anonymizer.vault import parse  # noqa: E402


@pytest.fixture(scope="module")
def finder():
    return get_finder(threshold=0.2, upscale=0.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "walk.mp4")


def _covered(frame: np.ndarray, i: int, speed: int = 5) -> bool:
    x, y = face_centre(i, speed)
    return float(frame[y - 10 : y + 10, x - 10 : x + 10].mean()) < 40  # solid black fill


def _fully_covered(out: np.ndarray, original: np.ndarray, finder) -> bool:
    """Every face the detector finds on the original frame is black over the inner 60% of its box."""
    faces = finder.find(original)
    assert faces
    for f in faces:
        x1, y1, x2, y2 = f.box
        w, h = x2 - x1, y2 - y1
        inner = out[int(y1 + 0.2 * h) : int(y2 - 0.2 * h), int(x1 + 0.2 * w) : int(x2 - 0.2 * w)]
        if float((inner.mean(axis=2) < 40).mean()) < 0.97:
            return False
    return True


def test_frames_timestamps_and_audio_are_kept(clip, finder, tmp_path) -> None:
    out = tmp_path / "out.mp4"
    report = anonymize_video(clip, out, AnonymizeOptions(detect_every=3), finder=finder)
    src_frames, src_pts, src_audio, _ = decode(clip)
    frames, pts, audio, _ = decode(out)
    assert len(frames) == len(src_frames) == report.frames == 24
    assert pts == src_pts
    assert audio and audio == src_audio  # copied packet for packet, not re-encoded
    assert all(_covered(f, i) for i, f in enumerate(frames))  # detection frames and tracked ones
    assert not _covered(src_frames[5], 5)
    # where the time went, stage by stage (the benchmark prints it)
    tm = report.timings
    assert set(tm) == {"decode", "detect", "track", "mesh", "cover", "seal", "wait", "encode", "total"}
    assert all(v >= 0 for v in tm.values()) and tm["detect"] > 0 and tm["encode"] > 0 and tm["cover"] > 0
    assert tm["mesh"] == 0  # meshes are for surrogates
    # planning and painting run in threads of their own, each within the whole
    assert tm["detect"] + tm["track"] <= tm["total"] * 1.05 and tm["cover"] + tm["seal"] <= tm["total"] * 1.05
    assert report.detections >= 8 and report.tracks >= 1


def test_a_face_appearing_after_the_last_detection_frame_is_covered(finder, tmp_path) -> None:
    # detections on frames 0, 3, 6; the face shows only on 7 and 8, the last two frames
    clip = make_clip(tmp_path / "late.mp4", frames=9, audio=False, visible=range(7, 9))
    out = tmp_path / "out.mp4"
    anonymize_video(clip, out, AnonymizeOptions(detect_every=3), finder=finder)
    frames, _, _, _ = decode(out)
    assert _covered(frames[7], 7) and _covered(frames[8], 8)
    assert not _covered(frames[0], 0)  # frames long before its first appearance stay as they were


def test_a_fast_face_entering_between_detections_is_covered_whole(finder, tmp_path) -> None:
    # 12 px per frame; appears on frame 4, first detected on 6, again on 9: frames 4-5 are filled back
    clip = make_clip(tmp_path / "fast.mp4", frames=12, audio=False, speed=12, visible=range(4, 12))
    out = tmp_path / "out.mp4"
    anonymize_video(clip, out, AnonymizeOptions(detect_every=3), finder=finder)
    frames, _, _, _ = decode(out)
    originals, _, _, _ = decode(clip)
    assert all(_fully_covered(frames[i], originals[i], finder) for i in range(4, 12))


def test_variable_frame_rate_and_no_audio(finder, tmp_path) -> None:
    clip = make_clip(tmp_path / "vfr.mp4", frames=12, audio=False, vfr=True)
    out = tmp_path / "out.mp4"
    anonymize_video(clip, out, finder=finder)
    _, src_pts, _, _ = decode(clip)
    frames, pts, audio, _ = decode(out)
    assert pts == src_pts and len(set(np.diff(pts))) > 1 and audio == []
    assert all(_covered(f, i) for i, f in enumerate(frames))


def test_rotation_is_kept_and_faces_are_found_upright(finder, tmp_path) -> None:
    # the stored frames hold the face on its side; the display rotation makes it upright
    import av
    import cv2

    src = make_clip(tmp_path / "upright.mp4", frames=6, audio=False)
    frames, _, _, _ = decode(src)
    rotated = tmp_path / "rot.mp4"
    with av.open(str(rotated), "w") as out:
        vs = out.add_stream("libx264", rate=12)
        vs.width, vs.height, vs.pix_fmt = frames[0].shape[0], frames[0].shape[1], "yuv420p"
        vs.set_display_rotation(90)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE)), format="rgb24"
            )
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    with av.open(str(rotated)) as c:
        display = int(next(c.decode(video=0)).rotation)
    out = tmp_path / "out.mp4"
    report = anonymize_video(rotated, out, AnonymizeOptions(detect_every=1), finder=finder)
    got, _, _, rotation = decode(out)
    assert rotation == display != 0
    assert report.detections >= 6
    for i, f in enumerate(got):
        upright = cv2.rotate(f, cv2.ROTATE_90_COUNTERCLOCKWISE)
        assert _covered(upright, i)


def test_span_keep_and_cut(clip, finder, tmp_path) -> None:
    keep = tmp_path / "keep.mp4"
    anonymize_video(clip, keep, AnonymizeOptions(start=1.0, end=1.5), finder=finder)
    frames, pts, _, _ = decode(keep)
    assert len(frames) == 24
    inside = [i for i, t in enumerate(pts) if 1000 <= t < 1500]
    assert inside and all(_covered(frames[i], i) for i in inside)
    assert not any(_covered(frames[i], i) for i in range(len(frames)) if i not in inside)
    cut = tmp_path / "cut.mp4"
    anonymize_video(clip, cut, AnonymizeOptions(start=1.0, end=1.5, cut=True), finder=finder)
    frames_cut, pts_cut, audio_cut, _ = decode(cut)
    # video and audio both shift by --start, so they stay in sync
    assert len(frames_cut) == len(inside) and pts_cut == [pts[i] - 1000 for i in inside]
    assert 0 < len(audio_cut) < len(decode(clip)[2])


def test_lossless_round_trip_with_a_key(clip, finder, tmp_path) -> None:
    key = Key.from_password("pw", kdf_params={"t": 2, "m": 19456, "p": 1})
    out = tmp_path / "anon.mp4"
    report = anonymize_video(clip, out, AnonymizeOptions(lossless=True), finder=finder, key=key)
    assert (tmp_path / "anon.mp4.vault").is_file() and report.regions >= 24
    # this clip's noise costs more bytes than its faces as PNG crops: the vault seals the regions
    assert {meta["codec"] for meta, _, _ in parse((tmp_path / "anon.mp4.vault").read_bytes()).records} == {"png"}
    restored = tmp_path / "restored.mp4"
    assert restore_video(out, restored, Key.from_password("pw")) == report.regions
    assert restored.stat().st_mode & 0o777 == 0o600
    src_frames, src_pts, src_audio, _ = decode(clip)
    frames, pts, audio, _ = decode(restored)
    assert all(np.array_equal(a, b) for a, b in zip(src_frames, frames, strict=True))  # bit for bit
    assert pts == src_pts and audio == src_audio
    with pytest.raises(WrongKeyError):
        restore_video(out, tmp_path / "x.mp4", Key.from_password("nope"))
    # the vault is read as a stream: damage far into it is found mid-way and the partial output removed
    side = tmp_path / "anon.mp4.vault"
    sealed = side.read_bytes()
    for damaged, message in [
        (sealed[:-1] + bytes([sealed[-1] ^ 1]), "record .* was modified"),
        (sealed[:-7], "truncated"),
        (sealed + b"\0", "after the last record"),
    ]:
        side.write_bytes(damaged)
        with pytest.raises(VaultIntegrityError, match=message):
            restore_video(out, tmp_path / "z.mp4", Key.from_password("pw"))
        assert not (tmp_path / "z.mp4").exists() and not list(tmp_path.glob("*.part*"))
    side.write_bytes(sealed)
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 1
    out.write_bytes(bytes(data))
    with pytest.raises(VaultIntegrityError, match="integrity check failed"):
        restore_video(out, tmp_path / "y.mp4", Key.from_password("pw"))
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "y.mp4").exists()


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    """The clip coded at crf 30: smaller than its faces as PNG crops, as real videos are."""
    return make_clip(tmp_path_factory.mktemp("clips") / "small.mp4", crf=30)


def test_a_small_original_is_sealed_whole_and_restored_byte_for_byte(small_clip, finder, tmp_path) -> None:
    key = Key.from_password("pw", kdf_params={"t": 2, "m": 19456, "p": 1})
    out = tmp_path / "anon.mp4"
    report = anonymize_video(small_clip, out, finder=finder, key=key)
    side = tmp_path / "anon.mp4.vault"
    assert [meta["codec"] for meta, _, _ in parse(side.read_bytes()).records] == ["file"]
    assert side.stat().st_size <= small_clip.stat().st_size * 1.13 + 4096  # the original, padded, and a header
    restored = tmp_path / "restored.mp4"
    assert restore_video(out, restored, key) == report.regions >= 24
    assert restored.read_bytes() == small_clip.read_bytes() and restored.stat().st_mode & 0o777 == 0o600
    sealed = side.read_bytes()
    for damaged, message in [
        (sealed[:-1] + bytes([sealed[-1] ^ 1]), "record 0 chunk 0 was modified"),
        (sealed + b"\0", "after the last record"),
    ]:
        side.write_bytes(damaged)
        with pytest.raises(VaultIntegrityError, match=message):
            restore_video(out, tmp_path / "z.mp4", key)
        assert not (tmp_path / "z.mp4").exists() and not list(tmp_path.glob("*.part*"))


def test_a_cut_video_seals_its_regions_not_the_original(small_clip, finder, tmp_path) -> None:
    """The original file holds what --cut dropped: a cut output's vault keeps to the regions."""
    key = Key.from_password("pw", kdf_params={"t": 2, "m": 19456, "p": 1})
    out = tmp_path / "cut.mp4"
    report = anonymize_video(
        small_clip, out, AnonymizeOptions(lossless=True, start=1.0, end=1.5, cut=True), finder=finder, key=key
    )
    vault = parse((tmp_path / "cut.mp4.vault").read_bytes())
    assert report.regions > 0 and {meta["codec"] for meta, _, _ in vault.records} == {"png"}
    restored = tmp_path / "restored.mp4"
    assert restore_video(out, restored, key) == report.regions
    assert len(decode(restored)[0]) == len(decode(out)[0])


@pytest.mark.parametrize("content", [b"", b"this is not a video", "half"])
def test_bad_videos_leave_nothing(clip, finder, tmp_path, content) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(clip.read_bytes()[: len(clip.read_bytes()) // 2] if content == "half" else content)
    out = tmp_path / "out" / "bad.mp4"
    with pytest.raises(InputError, match="bad.mp4"):
        anonymize_video(bad, out, finder=finder)
    assert not out.exists() and not any(p.name.endswith(".part.mp4") for p in out.parent.glob("*"))


def test_unknown_codec(clip, finder, tmp_path) -> None:
    with pytest.raises(InputError, match="codec"):
        anonymize_video(clip, tmp_path / "o.mp4", AnonymizeOptions(codec="no-such-codec"), finder=finder)
    assert list(tmp_path.glob("*.mp4")) == []


def test_a_failure_while_painting_is_raised_and_leaves_nothing(clip, finder, tmp_path, monkeypatch) -> None:
    """Painting runs in a thread of its own beside planning: its error reaches the caller, nothing hangs,
    and no output (or part file) is left behind."""
    from anonymizer.pipeline import video

    def broken(self, rgb, job):
        raise RuntimeError("painter broke")

    monkeypatch.setattr(video._FacePainter, "paint", broken)
    out = tmp_path / "out" / "walk.mp4"
    with pytest.raises(RuntimeError, match="painter broke"):
        anonymize_video(clip, out, finder=finder)
    assert not out.exists() and not any(p.name.endswith(".part.mp4") for p in out.parent.glob("*"))


def test_tracker_holds_and_associates() -> None:
    t = FaceTracker(hold=3)
    covers, new = t.update(0, np.array([[10, 10, 50, 50]], np.float32))
    assert len(new) == 1 and len(covers) == 1
    tid = new[0].id
    covers, new = t.update(1, np.array([[14, 10, 54, 50]], np.float32))  # moved: same track
    assert not new and [c[0] for c in covers] == [tid] and t.matches == {tid: 0}
    for f in (2, 3, 4):  # missed detections: still covered at the predicted place
        covers, _ = t.update(f, np.zeros((0, 4), np.float32))
        box = covers[0][1]
        assert [c[0] for c in covers] == [tid] and (box[0] + box[2]) / 2 > 32 + (f - 1)  # moving right
        assert t.matches == {}
    covers, _ = t.update(5, np.zeros((0, 4), np.float32))
    assert covers == []  # held for 3 frames after the last detection
    covers, new = t.update(6, np.array([[200, 200, 240, 240]], np.float32))
    assert len(new) == 1 and new[0].id != tid and t.matches == {new[0].id: 0}


def test_odd_sizes_and_containers(finder, tmp_path) -> None:
    import av

    src = make_clip(tmp_path / "src.mp4", frames=4, audio=False)
    frames, _, _, _ = decode(src)
    for name in ("odd.mkv", "odd.mp4"):
        path = tmp_path / name
        with av.open(str(path), "w") as out:
            vs = out.add_stream("libx264", rate=12)
            vs.width, vs.height, vs.pix_fmt = 319, 239, "yuv444p"
            for i, f in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:239, :319]), format="rgb24")
                vf.pts = i
                out.mux(vs.encode(vf))
            out.mux(vs.encode(None))
        dest = tmp_path / "out" / name
        anonymize_video(path, dest, finder=finder)
        got, _, _, _ = decode(dest)
        assert len(got) == 4 and got[0].shape == (239, 319, 3)
    assert (tmp_path / "out" / "odd.mp4").read_bytes()[4:12] == b"ftypisom"  # MP4, not QuickTime


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_expected_frames_for_progress(tmp_path, suffix) -> None:
    from anonymizer.media.video import probe

    info = probe(make_clip(tmp_path / f"c{suffix}", frames=24, fps=12))
    assert abs(info.expected_frames() - 24) <= 1  # MKV stores no frame count: estimated from the duration
    assert abs(info.expected_frames(0.5, 1.5, cut=True) - 12) <= 1
    assert info.expected_frames(0.5, 1.5, cut=False) == info.expected_frames()


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_points_and_boxes_found_upright_map_back_to_the_stored_frame(rotation) -> None:
    from anonymizer.ops.rotation import boxes_back as _boxes_back
    from anonymizer.ops.rotation import points_back as _points_back
    from anonymizer.ops.rotation import upright as _upright

    h, w = 30, 50
    stored = np.zeros((h, w, 3), np.uint8)
    stored[7, 11] = stored[20, 40] = 255  # two points: (x=11, y=7) and (x=40, y=20)
    up = _upright(stored, rotation)
    ys, xs = np.nonzero(up[:, :, 0])
    pts = np.stack([xs, ys], axis=1).astype(np.float32) + 0.5  # pixel centres
    back = _points_back(pts, rotation, w, h) - 0.5
    assert sorted(map(tuple, back.round().astype(int).tolist())) == [(11, 7), (40, 20)]
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    np.testing.assert_allclose(_boxes_back(box, rotation, w, h), [[11, 7, 41, 21]])


def test_tracker_follows_a_face_faster_than_its_width_between_detections() -> None:
    t = FaceTracker(hold=12)
    _, new = t.update(0, np.array([[0, 100, 40, 140]], np.float32))
    tid = new[0].id
    # 4 frames later it is 60 px on (1.5 widths): no overlap with its predicted box, still the same face
    _, new = t.update(4, np.array([[60, 100, 100, 140]], np.float32))
    assert not new and t.matches == {tid: 0}
    # the box follows the detection's centre (not a union stretched back along the motion) and is not smaller
    box = t.tracks[0].box
    assert (box[0] + box[2]) / 2 == 80 and box[2] - box[0] >= 40 and box[0] > 40
    # far away (4 widths in 1 frame) or of another size: another face
    _, new = t.update(5, np.array([[260, 100, 300, 140], [70, 100, 190, 220]], np.float32))
    assert len(new) == 2 and tid not in t.matches


def _black_share(frame: np.ndarray) -> float:
    return float((frame.mean(axis=2) < 20).mean())


def test_a_walking_face_is_covered_by_a_mask_of_its_own_size(finder, tmp_path) -> None:
    # 14 px per frame, detected every 4th frame: every frame covered, none by a blob much larger than the face
    clip = make_clip(tmp_path / "walk.mp4", frames=12, audio=False, speed=14)
    out = tmp_path / "out.mp4"
    anonymize_video(clip, out, AnonymizeOptions(detect_every=4), finder=finder)
    frames, _, _, _ = decode(out)
    originals, _, _, _ = decode(clip)
    assert all(_fully_covered(frames[i], originals[i], finder) for i in range(len(frames)))
    first = _black_share(frames[0])
    assert max(_black_share(f) for f in frames) < 1.3 * first


def test_a_jump_cut_within_one_place_is_a_cut_a_pan_is_not() -> None:
    import cv2

    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (90, 200), dtype=np.uint8), (0, 0), 3)
    scene = cv2.normalize(scene, None, 0, 255, cv2.NORM_MINMAX)

    def thumb(x: int) -> np.ndarray:
        return cv2.resize(scene[:, x : x + 160], (32, 18), interpolation=cv2.INTER_AREA)

    assert not scene_cut(None, thumb(0))
    assert not scene_cut(thumb(0), thumb(2))  # the camera pans a little between frames
    assert scene_cut(thumb(0), thumb(40))  # same place, another framing: the tracks must restart
