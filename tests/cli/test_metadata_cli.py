"""--keep-metadata through the CLI: GPS, serial numbers and owner names only when asked for by name, and said."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ExifTags, Image
from typer.testing import CliRunner

from anonymizer.cli.app import app


@pytest.fixture
def tagged(tmp_path: Path, samples: Path) -> Path:
    """A real portrait as a camera writes it: make, GPS position, body serial number, owner name."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "ExampleCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 30.0)
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "SN-0042-XYZ"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.CameraOwnerName] = "Owner Person"
    src = tmp_path / "in" / "portrait.jpg"
    src.parent.mkdir()
    with Image.open(samples / "grace_hopper.jpg") as im:
        im.save(src, exif=exif.tobytes(), quality=95)
    return src


def _exif(path: Path) -> Image.Exif:
    with Image.open(path) as im:
        return im.getexif()


def test_keep_metadata_leaves_out_what_identifies_and_says_so(tagged: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["anonymize", str(tagged), "-o", str(out), "--keep-metadata"])
    assert result.exit_code == 0, result.output
    exif = _exif(out / "portrait.jpg")
    assert exif[ExifTags.Base.Make] == "ExampleCam"
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
    data = (out / "portrait.jpg").read_bytes()
    assert b"SN-0042-XYZ" not in data and b"Owner Person" not in data
    assert "metadata: left out GPS position in 1 photo(s); --keep-gps keeps it" in result.stderr
    assert "metadata: left out camera and lens serial numbers in 1 photo(s); --keep-serials keeps it" in result.stderr
    assert "metadata: left out owner and author names in 1 photo(s); --keep-owner keeps it" in result.stderr


def test_keep_gps_keeps_the_position_and_says_so(tagged: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["anonymize", str(tagged), "-o", str(out), "--keep-metadata", "--keep-gps", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert _exif(out / "portrait.jpg").get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == (48.0, 51.0, 30.0)
    assert b"SN-0042-XYZ" not in (out / "portrait.jpg").read_bytes()
    assert "metadata: kept GPS position in 1 photo(s) (--keep-gps)" in result.stderr
    assert '"metadata": {"kept": ["gps"], "left_out": ["owner", "serials"]}' in result.stdout


def test_keep_gps_alone_is_a_usage_error(tagged: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["anonymize", str(tagged), "-o", str(tmp_path / "out"), "--keep-gps"])
    assert result.exit_code == 2 and "add --keep-metadata" in result.stderr
    assert not (tmp_path / "out").exists()


def test_default_strips_everything(tagged: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["anonymize", str(tagged), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert not _exif(out / "portrait.jpg") and "metadata:" not in result.stderr
