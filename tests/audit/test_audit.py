"""The audit: alignment, metadata leaks, recognizers (dlib), verdicts, and the `audit` command."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "media"))
from test_image import _exif_with_gps_and_thumbnail  # noqa: E402

from anonymizer import Key  # noqa: E402
from anonymizer.api import anonymize_image  # noqa: E402
from anonymizer.audit.metadata import metadata_leaks  # noqa: E402
from anonymizer.audit.recognizers import DlibRecognizer, distance, dlib_available, get_recognizer  # noqa: E402
from anonymizer.audit.report import audit_image, find_original  # noqa: E402
from anonymizer.cli.app import app  # noqa: E402
from anonymizer.errors import InputError  # noqa: E402
from anonymizer.ops.align import TEMPLATE_112, align_face, similarity_transform  # noqa: E402

needs_dlib = pytest.mark.skipif(not dlib_available(), reason="dlib (the [audit] extra) is not installed")


# alignment -------------------------------------------------------------------------------------------


def test_similarity_transform_recovers_a_known_transform() -> None:
    a = np.deg2rad(20)
    m = np.array([[1.7 * np.cos(a), -1.7 * np.sin(a), 12.0], [1.7 * np.sin(a), 1.7 * np.cos(a), -5.0]])
    src = TEMPLATE_112 + np.array([3.0, 1.0])
    dst = src @ m[:, :2].T + m[:, 2]
    assert np.allclose(similarity_transform(src, dst), m, atol=1e-9)
    mirrored = dst * np.array([-1, 1])  # a reflection is not a similarity: best rotation only
    assert np.linalg.det(similarity_transform(src, mirrored)[:, :2]) > 0


def test_align_face_puts_landmarks_on_the_template(samples) -> None:
    from anonymizer.api import detect_faces

    det = detect_faces(samples / "grace_hopper.jpg")
    rgb = np.asarray(Image.open(samples / "grace_hopper.jpg").convert("RGB"))
    crop = align_face(rgb, det.faces[0].landmarks, size=96)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    again = detect_faces(np.ascontiguousarray(crop), upscale=2.0)  # the aligned face is still a face
    assert again.faces and again.faces[0].score > 0.5


@pytest.mark.parametrize(
    ("rgb", "lm", "message"),
    [
        (np.zeros((10, 10), np.uint8), np.zeros((5, 2)), "RGB uint8"),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((4, 2)), "five"),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2)), "one point"),
        (np.zeros((10, 10, 3), np.uint8), np.full((5, 2), np.nan), "finite"),
    ],
)
def test_align_face_rejects_bad_input(rgb, lm, message) -> None:
    with pytest.raises(InputError, match=message):
        align_face(rgb, lm)


# metadata ----------------------------------------------------------------------------------------------


def test_metadata_leaks_are_found_and_our_outputs_have_none(samples, tmp_path) -> None:
    arr = np.asarray(Image.open(samples / "grace_hopper.jpg").convert("RGB"))
    tagged = tmp_path / "tagged.jpg"
    Image.fromarray(arr).save(
        tagged, "JPEG", exif=_exif_with_gps_and_thumbnail(orientation=1), xmp=b"<x:xmpmeta/>", comment=b"Alice's phone"
    )
    kinds = {leak.kind: leak.detail for leak in metadata_leaks(tagged)}
    assert set(kinds) == {"gps", "thumbnail", "xmp", "comment"}
    assert "48.8583" in kinds["gps"] and "Alice" in kinds["comment"]
    png = tmp_path / "text.png"
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Bob")
    Image.fromarray(arr).save(png, pnginfo=info)
    assert [leak.kind for leak in metadata_leaks(png)] == ["text"]
    out = anonymize_image(tagged).save(tmp_path / "out.jpg")
    assert metadata_leaks(out) == []  # stripped by default
    with pytest.raises(InputError, match="not-an-image.jpg"):
        (tmp_path / "not-an-image.jpg").write_text("hello")
        metadata_leaks(tmp_path / "not-an-image.jpg")


# recognizers -------------------------------------------------------------------------------------------


@needs_dlib
def test_dlib_tells_people_apart_and_anonymized_faces_from_originals(samples) -> None:
    from anonymizer.api import detect_faces

    rec = get_recognizer("dlib")
    assert isinstance(rec, DlibRecognizer) and rec.threshold == 0.6
    imgs = {n: np.asarray(Image.open(samples / n).convert("RGB")) for n in ("astronaut.png", "grace_hopper.jpg")}
    faces = {n: detect_faces(imgs[n]).faces[0] for n in imgs}
    a = rec.embed(imgs["astronaut.png"], faces["astronaut.png"])
    b = rec.embed(imgs["grace_hopper.jpg"], faces["grace_hopper.jpg"])
    assert a.shape == (128,) and distance(a, b) > 0.6
    # the same person through a mild change (JPEG at quality 60, 0.8x scale) stays close
    buf = io.BytesIO()
    Image.fromarray(imgs["astronaut.png"]).resize((410, 410)).save(buf, "JPEG", quality=60)
    small = np.asarray(Image.open(buf).convert("RGB"))
    f = detect_faces(small).faces[0]
    assert distance(a, rec.embed(small, f)) < 0.4
    for method in ("solid", "pixelate", "blur"):
        out = anonymize_image(imgs["astronaut.png"], method=method).image
        assert distance(a, rec.embed(out, faces["astronaut.png"])) > 0.6, method
    assert rec.embed_many(imgs["astronaut.png"], []).shape == (0, 128)


@needs_dlib
def test_dlib_descriptor_from_known_landmarks_matches_its_own_alignment(samples) -> None:
    """embed_aligned (our landmarks onto dlib's chip template, no shape predictor) describes the same
    person as dlib's own path, on the photo and on a small aligned crop, and still tells people apart."""
    import cv2

    from anonymizer.api import detect_faces
    from anonymizer.nn.surrogate import crop_template

    rec = get_recognizer("dlib")
    assert isinstance(rec, DlibRecognizer)
    descs, own = [], []
    for name in ("astronaut.png", "grace_hopper.jpg"):
        rgb = np.asarray(Image.open(samples / name).convert("RGB"))
        face = detect_faces(rgb).faces[0]
        lm = np.asarray(face.landmarks, np.float32)
        own.append(rec.embed(rgb, face))
        m = similarity_transform(lm.astype(np.float64), crop_template(64))
        small = cv2.warpAffine(rgb, m, (64, 64), flags=cv2.INTER_AREA)
        lm_small = lm @ m[:, :2].T.astype(np.float32) + m[:, 2].astype(np.float32)
        descs.append(rec.embed_aligned(rgb[None], lm[None])[0])
        descs.append(rec.embed_aligned(small[None], lm_small[None])[0])
    assert distance(descs[0], own[0]) < 0.3 and distance(descs[1], own[0]) < 0.35
    assert distance(descs[2], own[1]) < 0.3 and distance(descs[3], own[1]) < 0.35
    assert distance(descs[1], descs[3]) > 0.6  # two people stay two people at 64 px
    assert rec.embed_aligned(np.zeros((0, 64, 64, 3), np.uint8), np.zeros((0, 5, 2), np.float32)).shape == (0, 128)
    with pytest.raises(InputError, match="uint8 crops"):
        rec.embed_aligned(np.zeros((1, 64, 64, 3), np.float32), np.zeros((1, 5, 2), np.float32))


# the audit ---------------------------------------------------------------------------------------------


@needs_dlib
def test_audit_verdicts(samples, finder, tmp_path) -> None:
    rec = get_recognizer("dlib")
    src = samples / "astronaut.png"
    good = anonymize_image(src, method="solid").save(tmp_path / "good.png")
    res = audit_image(good, finder=finder, recognizer=rec, original=src)
    assert res.verdict == "pass" and res.identity and res.identity[0]["distance"] > 0.6 and not res.faces
    leaked = tmp_path / "leaked.png"
    leaked.write_bytes(src.read_bytes())  # "anonymized" by copying: the face is all there
    res = audit_image(leaked, finder=finder, recognizer=rec, original=src)
    assert res.verdict == "fail" and res.identity[0]["distance"] < 0.1
    assert any("still recognisable" in r for r in res.reasons)
    box = "[" + ", ".join(f"{v:.0f}" for v in res.identity[0]["box"]) + "]"
    assert any(f"face 0 at {box} is still recognisable" in r for r in res.reasons)  # where, not only which
    res = audit_image(leaked, finder=finder)  # no original: a visible face cannot be cleared
    assert res.verdict == "fail" and any("visible at [" in r for r in res.reasons)
    key = Key.from_password("pw", kdf_params={"t": 2, "m": 19456, "p": 1})
    sealed = anonymize_image(src, key=key, method="solid").save(tmp_path / "sealed.png")
    res = audit_image(sealed, finder=finder, recognizer=rec, key=Key.from_password("pw"))
    assert (
        res.verdict == "pass"
        and res.vault == {"present": True, "opens": True}
        and res.original == "restored through the key"
    )
    res = audit_image(sealed, finder=finder, recognizer=rec, key=Key.from_password("wrong"))
    assert res.verdict == "fail" and res.vault["opens"] is False and "wrong password" in res.vault["error"]


def test_find_original_by_path_or_stem(tmp_path) -> None:
    (tmp_path / "orig" / "a").mkdir(parents=True)
    (tmp_path / "orig" / "a" / "x.jpg").write_bytes(b"")
    (tmp_path / "orig" / "y.png").write_bytes(b"")
    assert find_original(Path("a/x.jpg"), tmp_path / "orig") == tmp_path / "orig" / "a" / "x.jpg"
    assert find_original(Path("a/x.png"), tmp_path / "orig") == tmp_path / "orig" / "a" / "x.jpg"
    assert find_original(Path("y.png"), tmp_path / "orig") == tmp_path / "orig" / "y.png"
    assert find_original(Path("z.png"), tmp_path / "orig") is None


@needs_dlib
def test_audit_command(samples, tmp_path) -> None:
    outs, origs = tmp_path / "outs", tmp_path / "origs"
    outs.mkdir()
    origs.mkdir()
    for name in ("astronaut.png", "grace_hopper.jpg"):
        (origs / name).write_bytes((samples / name).read_bytes())
    anonymize_image(samples / "astronaut.png", method="solid").save(outs / "astronaut.png")
    (outs / "grace_hopper.jpg").write_bytes((samples / "grace_hopper.jpg").read_bytes())  # not anonymized
    (outs / "broken.png").write_text("not an image")
    report, sheet = tmp_path / "audit.json", tmp_path / "audit.html"
    r = CliRunner().invoke(
        app,
        [
            "audit",
            str(outs),
            "--originals",
            str(origs),
            "--json",
            str(report),
            "--html",
            str(sheet),
            "--recognizer",
            "dlib",
        ],
    )
    assert r.exit_code == 1
    assert "PASS" in r.stdout and "FAIL" in r.stdout and "broken.png" in r.stdout
    doc = json.loads(report.read_text())
    verdicts = {Path(f["path"]).name: f["verdict"] for f in doc["files"]}
    assert verdicts == {"astronaut.png": "pass", "grace_hopper.jpg": "fail"}
    assert [Path(e["path"]).name for e in doc["errors"]] == ["broken.png"]
    files = {Path(f["path"]).name: f for f in doc["files"]}
    assert files["grace_hopper.jpg"]["faces"] and all(
        0 <= f["synthetic"] <= 1 for f in files["grace_hopper.jpg"]["faces"]
    )
    page = sheet.read_text()
    assert page.count("data:image/png;base64") >= 4 and "recognisable" in page
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o600
    ok = CliRunner().invoke(
        app, ["audit", str(outs / "astronaut.png"), "--originals", str(origs), "--recognizer", "dlib"]
    )
    assert ok.exit_code == 0, ok.stderr


class _ConstantLogit(torch.nn.Module):
    """A stand-in classifier: the same logit for every face."""

    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), self.logit)


def test_synthetic_flags_follow_the_threshold_in_json_and_html(samples, finder) -> None:
    from anonymizer.audit.html import render_html
    from anonymizer.pipeline.deepfake import SYNTHETIC_THRESHOLD, DeepfakeScorer

    src = samples / "grace_hopper.jpg"  # a real face, left as it is: the detector finds it
    p = float(torch.sigmoid(torch.tensor(1.0)))  # 0.73
    for threshold, flagged in ((0.5, True), (0.9, False)):
        scorer = DeepfakeScorer(model=_ConstantLogit(1.0), threshold=threshold)
        res = audit_image(src, finder=finder, deepfake=scorer, keep_images=True)
        doc = res.to_dict()
        assert doc["synthetic_threshold"] == threshold and doc["faces"]
        assert all(f["synthetic"] == pytest.approx(p, abs=1e-4) for f in doc["faces"])
        assert all(f["synthetic_flagged"] is flagged for f in doc["faces"])
        page = render_html([res])
        assert f"threshold {threshold:.4f}" in page and ("synthetic 0.7311 flagged" in page) is flagged
    assert "synthetic_threshold" not in audit_image(src, finder=finder).to_dict()  # not scored: no threshold
    assert 0 < SYNTHETIC_THRESHOLD < 1
    for bad in (0.0, 1.0, -0.2):
        with pytest.raises(InputError, match="synthetic threshold"):
            DeepfakeScorer(model=_ConstantLogit(0.0), threshold=bad)
