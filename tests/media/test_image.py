"""Image reading and writing: inputs, EXIF orientation, bad files, size limits, metadata policy, atomic writes."""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from anonymizer.errors import InputError, MediaError
from anonymizer.media.files import write_atomic
from anonymizer.media.image import LoadedImage, encode_image, load_image, private_metadata, save_image

ROOT = Path(__file__).resolve().parents[2]

THUMB_MARKER = b"THUMBNAIL-MARKER-5e1f0c9a"
XMP_MARKER = b"XMP-MARKER-77d2"
COMMENT_MARKER = b"COMMENT-MARKER-3b90"
MAKE = "TestCam-a41c"
GPS_LATITUDE = (48.0, 51.0, 30.0)


def _encode(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _reopen(data: bytes | Path) -> Image.Image:
    """Decode encoded bytes or a file fully, closing the file."""
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        im.load()
    return im


def _gradient(h: int = 40, w: int = 60) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 6 % 256, (x + y) % 256], axis=2).astype(np.uint8)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif_with_gps_and_thumbnail(orientation: int) -> bytes:
    """A little-endian EXIF block: IFD0 (Make, Orientation, GPS pointer), a GPS IFD, and IFD1 holding a
    JPEG thumbnail (JPEGInterchangeFormat/Length) whose bytes contain THUMB_MARKER."""
    thumb = _encode(np.full((12, 16, 3), (200, 10, 10), np.uint8), "JPEG", comment=THUMB_MARKER)
    assert THUMB_MARKER in thumb

    def entry(tag: int, typ: int, count: int, value: bytes) -> bytes:
        return struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")

    make = MAKE.encode() + b"\x00"
    lat = struct.pack("<6I", *(int(v) for pair in zip(GPS_LATITUDE, (1, 1, 1), strict=True) for v in pair))
    ifd0 = 8
    make_at = ifd0 + 2 + 3 * 12 + 4
    gps = make_at + len(make)
    lat_at = gps + 2 + 2 * 12 + 4
    ifd1 = lat_at + len(lat)
    thumb_at = ifd1 + 2 + 3 * 12 + 4
    tiff = b"II*\x00" + struct.pack("<I", ifd0)
    tiff += struct.pack("<H", 3)
    tiff += entry(0x010F, 2, len(make), struct.pack("<I", make_at))  # Make
    tiff += entry(0x0112, 3, 1, struct.pack("<H", orientation))  # Orientation
    tiff += entry(0x8825, 4, 1, struct.pack("<I", gps))  # GPSInfo IFD pointer
    tiff += struct.pack("<I", ifd1) + make
    tiff += struct.pack("<H", 2)
    tiff += entry(0x0001, 2, 2, b"N\x00")  # GPSLatitudeRef
    tiff += entry(0x0002, 5, 3, struct.pack("<I", lat_at))  # GPSLatitude
    tiff += struct.pack("<I", 0) + lat
    tiff += struct.pack("<H", 3)
    tiff += entry(0x0103, 3, 1, struct.pack("<H", 6))  # Compression: JPEG
    tiff += entry(0x0201, 4, 1, struct.pack("<I", thumb_at))  # JPEGInterchangeFormat
    tiff += entry(0x0202, 4, 1, struct.pack("<I", len(thumb)))  # JPEGInterchangeFormatLength
    tiff += struct.pack("<I", 0)
    assert len(tiff) == thumb_at
    return b"Exif\x00\x00" + tiff + thumb


@pytest.fixture(scope="module")
def tagged_jpeg() -> bytes:
    """A 60x40 (stored) JPEG with Orientation=6, GPS, an EXIF thumbnail, XMP, a COM comment and an ICC profile."""
    xmp = (
        b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        + XMP_MARKER
        + b'</x:xmpmeta><?xpacket end="w"?>'
    )
    data = _encode(
        _gradient(),
        "JPEG",
        quality=95,
        exif=_exif_with_gps_and_thumbnail(orientation=6),
        xmp=xmp,
        comment=COMMENT_MARKER,
        icc_profile=_srgb_icc(),
    )
    # The fixture really carries everything the policy is about.
    for marker in (THUMB_MARKER, XMP_MARKER, COMMENT_MARKER, MAKE.encode()):
        assert marker in data
    src = Image.open(io.BytesIO(data))
    exif = src.getexif()
    assert exif.get_ifd(ExifTags.IFD.GPSInfo)[2] == GPS_LATITUDE
    assert exif.get_ifd(ExifTags.IFD.IFD1)[0x0202] > 0
    return data


# load_image: sources --------------------------------------------------------------------------------


def test_load_rgb_array() -> None:
    arr = _gradient()
    img = load_image(arr)
    assert isinstance(img, LoadedImage)
    assert img.rgb.dtype == np.uint8 and img.rgb.shape == (40, 60, 3)
    assert (img.height, img.width) == (40, 60)
    assert img.alpha is None and img.path is None and img.format is None
    np.testing.assert_array_equal(img.rgb, arr)


def test_load_rgba_array_splits_alpha() -> None:
    rgba = np.dstack([_gradient(), np.full((40, 60), 77, np.uint8)])
    img = load_image(rgba)
    np.testing.assert_array_equal(img.rgb, rgba[:, :, :3])
    assert img.alpha is not None
    np.testing.assert_array_equal(img.alpha, rgba[:, :, 3])


def test_load_grey_array_repeats_channels() -> None:
    grey = _gradient()[:, :, 0]
    img = load_image(grey)
    assert img.rgb.shape == (40, 60, 3)
    for c in range(3):
        np.testing.assert_array_equal(img.rgb[:, :, c], grey)


@pytest.mark.parametrize(
    ("arr", "expected"),
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "(4, 4, 2)"),
        (np.zeros((2, 4, 4, 3), np.uint8), "(2, 4, 4, 3)"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((0, 4), np.uint8), "empty"),
    ],
)
def test_load_bad_array(arr: np.ndarray, expected: str) -> None:
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_image(arr)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_load_pil_image(mode: str) -> None:
    rgba = np.dstack([_gradient(), np.linspace(0, 255, 60, dtype=np.uint8)[None, :].repeat(40, 0)])
    im = Image.fromarray(rgba, "RGBA").convert(mode)
    img = load_image(im)
    assert img.rgb.shape == (40, 60, 3)
    np.testing.assert_array_equal(img.rgb, np.asarray(im.convert("RGB")))
    if "A" in mode:
        assert img.alpha is not None
        np.testing.assert_array_equal(img.alpha, rgba[:, :, 3])
    else:
        assert img.alpha is None


def test_load_paths(tmp_path: Path, samples: Path) -> None:
    rgba = np.dstack([_gradient(), np.full((40, 60), 9, np.uint8)])
    png = _write(tmp_path / "a.png", _encode(rgba, "PNG"))
    img = load_image(png)
    assert img.format == "PNG" and img.path == png
    np.testing.assert_array_equal(img.rgb, rgba[:, :, :3])
    assert img.alpha is not None and (img.alpha == 9).all()

    img = load_image(str(samples / "grace_hopper.jpg"))  # a str path works too
    assert img.format == "JPEG" and img.rgb.shape == (600, 512, 3)

    grey = load_image(samples / "camera.png")  # mode L on disk
    assert grey.rgb.shape == (512, 512, 3)
    assert np.array_equal(grey.rgb[:, :, 0], grey.rgb[:, :, 1]) and np.array_equal(grey.rgb[:, :, 1], grey.rgb[:, :, 2])


def test_load_16_bit_png_scales_to_8_bit(tmp_path: Path) -> None:
    arr = (np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 27).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert _reopen(path).mode.startswith("I")
    img = load_image(path)
    assert img.rgb.dtype == np.uint8 and img.rgb.shape == (40, 60, 3)
    assert img.rgb.max() == 255 and img.rgb[0, 0, 0] == 0


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.full((40, 60, 3), 128, np.uint8)  # stored 60 wide, 40 high
    arr[:8, :8] = (255, 0, 0)  # a red marker in the stored top-left corner
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display rotated 90 degrees clockwise
    path = _write(tmp_path / "rotated.jpg", _encode(arr, "JPEG", quality=95, exif=exif.tobytes()))
    img = load_image(path)
    assert img.rgb.shape == (60, 40, 3)  # transposed
    # Rotating clockwise moves the stored top-left corner to the top-right.
    top_right = img.rgb[:8, -8:].reshape(-1, 3).mean(axis=0)
    top_left = img.rgb[:8, :8].reshape(-1, 3).mean(axis=0)
    assert top_right[0] > 200 and top_right[1] < 60 and top_right[2] < 60
    assert abs(top_left - 128).max() < 20


# load_image: bad files name the file ----------------------------------------------------------------


def _bad_files(tmp_path: Path, samples: Path) -> dict[str, Path]:
    jpeg = (samples / "grace_hopper.jpg").read_bytes()
    png = (samples / "astronaut.png").read_bytes()
    folder = tmp_path / "a folder.jpg"
    folder.mkdir()
    return {
        "empty": _write(tmp_path / "zero.jpg", b""),
        "truncated": _write(tmp_path / "half.jpg", jpeg[: len(jpeg) // 2]),
        "truncated_png": _write(tmp_path / "half.png", png[: len(png) // 2]),
        "text": _write(tmp_path / "notes.jpg", b"this is not a photo\n" * 20),
        "missing": tmp_path / "nowhere.jpg",
        "folder": folder,
    }


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("empty", "empty"),
        ("truncated", "truncated"),
        ("truncated_png", "truncated"),
        ("text", "not an image"),
        ("missing", "no such file"),
        ("folder", "not a regular file"),
    ],
)
def test_bad_file_raises_input_error_naming_it(tmp_path: Path, samples: Path, case: str, words: str) -> None:
    path = _bad_files(tmp_path, samples)[case]
    with pytest.raises(InputError) as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    assert words in str(info.value)


def _png_claiming(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose IHDR is patched (with a valid CRC) to claim ``width`` x ``height``."""
    data = bytearray(_encode(np.zeros((8, 8, 3), np.uint8), "PNG"))
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bomb_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "bomb.png", _png_claiming(60_000, 60_000))
    with pytest.raises(InputError) as info:
        load_image(path)
    msg = str(info.value)
    assert str(path) in msg and "decompression bomb" in msg and "limit" in msg


def test_the_pixel_limit_is_the_one_the_readme_states(tmp_path: Path) -> None:
    # The README promised 200 MP while Pillow refused anything above 179 MP first.
    from anonymizer.media.image import MAX_PIXELS

    assert round(MAX_PIXELS / 1e6) == 179 and "more than 179 MP" in (ROOT / "README.md").read_text()
    below = _write(tmp_path / "below.png", _png_claiming(13_000, 13_500))  # 175.5 MP: opened (then truncated)
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(below)
    above = _write(tmp_path / "above.png", _png_claiming(13_500, 13_500))  # 182 MP
    with pytest.raises(InputError, match="above the limit of 178,956,970 pixels"):
        load_image(above)


def test_max_pixels_limit(tmp_path: Path) -> None:
    path = _write(tmp_path / "small.png", _encode(_gradient(), "PNG"))
    assert load_image(path, max_pixels=60 * 40).width == 60  # at the limit: fine
    with pytest.raises(InputError) as info:
        load_image(path, max_pixels=60 * 40 - 1)
    msg = str(info.value)
    assert str(path) in msg and "60x40" in msg and "limit" in msg


def test_max_pixels_message_states_the_numbers(tmp_path: Path) -> None:
    # Regression: small limits used to read "60x40 = 0 MP, above the limit of 0 MP".
    path = _write(tmp_path / "small.png", _encode(_gradient(), "PNG"))
    with pytest.raises(InputError) as info:
        load_image(path, max_pixels=1000)
    msg = str(info.value)
    assert "0 MP" not in msg and re.search(r"2,?400", msg) and re.search(r"1,?000", msg)


def test_multi_frame_gif_is_refused(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (0, 255)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(InputError) as info:
        load_image(path)
    assert str(path) in str(info.value) and "2 frames" in str(info.value)


def test_single_frame_gif_loads(tmp_path: Path) -> None:
    path = tmp_path / "still.gif"
    Image.fromarray(np.full((16, 16, 3), 255, np.uint8)).save(path)
    assert load_image(path).rgb.shape == (16, 16, 3)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_tiff_next_ifd_raises_input_error(tmp_path: Path) -> None:
    # Regression: Pillow raises TypeError ("Missing dimensions") from n_frames here.
    data = bytearray(_encode(np.zeros((8, 16, 3), np.uint8), "TIFF"))
    first = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, first)[0]
    struct.pack_into("<I", data, first + 2 + 12 * count, len(data) + 1000)  # next IFD: past the end
    path = _write(tmp_path / "broken.tif", bytes(data))
    with pytest.raises(InputError) as info:
        load_image(path)
    assert str(path) in str(info.value)


# Metadata policy --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
def test_metadata_stripped_by_default(tagged_jpeg: bytes, fmt: str) -> None:
    img = load_image(Image.open(io.BytesIO(tagged_jpeg)))
    assert img.exif is not None and img.xmp and img.comment and img.icc_profile
    out = encode_image(img, format=fmt)
    for marker in (THUMB_MARKER, XMP_MARKER, COMMENT_MARKER, MAKE.encode(), b"Exif\x00\x00"):
        assert marker not in out
    im = _reopen(out)
    exif = im.getexif()  # TIFF keeps its own structural tags here, never the source's
    assert ExifTags.Base.Make not in exif and ExifTags.Base.GPSInfo not in exif
    assert ExifTags.Base.Orientation not in exif or exif[ExifTags.Base.Orientation] == 1
    if fmt != "tiff":
        assert not exif
    assert not {"exif", "xmp", "comment", "XML:com.adobe.xmp"} & set(im.info)
    assert im.info.get("icc_profile") == img.icc_profile  # the colour profile is kept
    assert im.size == (40, 60)  # upright: orientation applied to the pixels


def test_keep_metadata_resets_orientation_and_drops_thumbnail(tagged_jpeg: bytes) -> None:
    img = load_image(Image.open(io.BytesIO(tagged_jpeg)))
    out = encode_image(img, format="jpeg", keep_metadata=True)
    assert THUMB_MARKER not in out
    im = _reopen(out)
    exif = im.getexif()
    assert exif[ExifTags.Base.Orientation] == 1
    assert not exif.get_ifd(ExifTags.IFD.IFD1)
    assert XMP_MARKER in im.info["xmp"]
    assert im.info["comment"] == COMMENT_MARKER
    assert im.info["icc_profile"] == img.icc_profile
    # Loading the output again does not rotate it a second time.
    assert load_image(im).rgb.shape == (60, 40, 3)


def test_keep_metadata_keeps_exif_tags_and_gps_only_when_asked(tagged_jpeg: bytes) -> None:
    # Regression: _exif_for_output once dropped every tag but Orientation.
    img = load_image(Image.open(io.BytesIO(tagged_jpeg)))
    assert private_metadata(img) == {"gps": ["EXIF"]}
    exif = _reopen(encode_image(img, format="jpeg", keep_metadata=True)).getexif()
    assert exif.get(ExifTags.Base.Make) == MAKE
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo)  # where the photo was taken: only by name
    exif = _reopen(encode_image(img, format="jpeg", keep_metadata=True, keep_private={"gps"})).getexif()
    assert exif.get_ifd(ExifTags.IFD.GPSInfo).get(ExifTags.GPS.GPSLatitude) == GPS_LATITUDE


def test_keep_metadata_leaves_out_serials_and_owners_unless_named() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MAKE
    exif[ExifTags.Base.Artist] = "Jane Roe"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "SN-0042-XYZ"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.LensSerialNumber] = "LENS-77-QRS"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.CameraOwnerName] = "Owner Person"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><aux:SerialNumber>SN-0042-XYZ</aux:SerialNumber></x:xmpmeta>'
    img = load_image(Image.open(io.BytesIO(_encode(_gradient(), "JPEG", exif=exif.tobytes(), xmp=xmp))))
    assert private_metadata(img) == {"serials": ["EXIF", "XMP"], "owner": ["EXIF"]}
    out = encode_image(img, format="jpeg", keep_metadata=True)
    for secret in (b"Jane Roe", b"SN-0042-XYZ", b"LENS-77-QRS", b"Owner Person"):
        assert secret not in out  # the XMP holding a serial number went whole
    assert _reopen(out).getexif().get(ExifTags.Base.Make) == MAKE
    out = encode_image(img, format="jpeg", keep_metadata=True, keep_private={"serials"})
    assert b"SN-0042-XYZ" in out and b"LENS-77-QRS" in out and b"Jane Roe" not in out and b"Owner Person" not in out
    out = encode_image(img, format="jpeg", keep_metadata=True, keep_private={"owner"})
    assert b"Jane Roe" in out and b"Owner Person" in out and b"SN-0042-XYZ" not in out


def test_keep_metadata_drops_maker_note_previews() -> None:
    marker = b"MAKERNOTE-PREVIEW-2c7e"
    preview = _encode(np.full((16, 16, 3), 9, np.uint8), "JPEG", comment=marker)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MAKE
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.MakerNote] = b"VENDOR\x00\x00" + preview
    src = _encode(_gradient(), "JPEG", exif=exif.tobytes())
    assert marker in src
    out = encode_image(load_image(Image.open(io.BytesIO(src))), format="jpeg", keep_metadata=True)
    assert _reopen(out).getexif().get(ExifTags.Base.Make) == MAKE  # the rest of EXIF is kept
    assert marker not in out


def test_png_text_chunks_stripped_by_default_kept_on_request(tmp_path: Path) -> None:
    info = PngInfo()
    info.add_text("Author", "Jane Roe")
    info.add_text("Location", "52.37N 4.89E")
    info.add_itxt("Description", "a photo of someone")
    path = _write(tmp_path / "t.png", _encode(_gradient(), "PNG", pnginfo=info))
    img = load_image(path)
    assert img.text["Author"] == "Jane Roe"
    stripped = encode_image(img, format="png")
    assert b"Jane Roe" not in stripped and b"52.37N" not in stripped and b"someone" not in stripped
    assert not {"Author", "Location", "Description"} & set(_reopen(stripped).info)
    kept = _reopen(encode_image(img, format="png", keep_metadata=True)).info
    assert kept["Location"] == "52.37N 4.89E" and "Author" not in kept  # a name: only by name
    kept = _reopen(encode_image(img, format="png", keep_metadata=True, keep_private={"owner"})).info
    assert kept["Author"] == "Jane Roe"


def test_sample_png_comment_is_stripped(samples: Path) -> None:
    img = load_image(samples / "astronaut.png")
    assert img.text.get("Comment") and img.icc_profile
    im = _reopen(encode_image(img, format="png"))
    assert "Comment" not in im.info and im.info["icc_profile"] == img.icc_profile


# encode_image / save_image ----------------------------------------------------------------------------


def test_encode_png_is_lossless_and_keeps_alpha() -> None:
    rgba = np.dstack([_gradient(), np.full((40, 60), 200, np.uint8)])
    img = load_image(rgba)
    im = _reopen(encode_image(img, format="png"))
    assert im.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(im), rgba)
    jpeg = _reopen(encode_image(img, format="jpg"))
    assert jpeg.format == "JPEG" and jpeg.mode == "RGB"


def test_encode_bad_input() -> None:
    with pytest.raises(InputError, match="unsupported output format 'gif'"):
        encode_image(_gradient(), format="gif")
    with pytest.raises(InputError, match="RGB uint8"):
        encode_image(_gradient().astype(np.float32), format="png")
    with pytest.raises(InputError, match="RGB uint8"):
        encode_image(_gradient()[:, :, 0], format="png")


def test_save_image_format_from_suffix(tmp_path: Path) -> None:
    arr = _gradient()
    out = save_image(arr, tmp_path / "sub" / "x.png")
    assert out == tmp_path / "sub" / "x.png"
    np.testing.assert_array_equal(np.asarray(_reopen(out)), arr)
    assert _reopen(save_image(arr, tmp_path / "y.jpeg")).format == "JPEG"
    assert _reopen(save_image(arr, tmp_path / "z.bin", format="webp")).format == "WEBP"
    with pytest.raises(InputError, match="unsupported output format"):
        save_image(arr, tmp_path / "w.gif")
    assert not (tmp_path / "w.gif").exists()


# write_atomic -----------------------------------------------------------------------------------------


def test_write_atomic_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.bin"
    write_atomic(target, b"first")
    assert target.read_bytes() == b"first"
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_write_atomic_parent_is_a_file(tmp_path: Path) -> None:
    blocker = _write(tmp_path / "blocker", b"x")
    target = blocker / "out.png"
    with pytest.raises(MediaError) as info:
        write_atomic(target, b"data")
    assert str(target) in str(info.value) and "cannot create the output folder" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_write_atomic_failed_rename_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(MediaError) as info:
        write_atomic(target, b"data")
    assert str(target) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert list(target.iterdir()) == []


def test_write_atomic_permissions_follow_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "out.png", b"data")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "out.png").stat().st_mode)
    assert mode != 0o600
    assert mode == 0o644


def test_mpo_phone_photo_reads_its_first_frame(tmp_path: Path) -> None:
    # Phone JPEGs often carry a reduced preview as an MPO second frame; the first frame is the photo.
    main = Image.new("RGB", (64, 48), (200, 10, 10))
    preview = Image.new("RGB", (32, 24), (10, 200, 10))
    path = tmp_path / "phone.jpg"
    main.save(path, format="MPO", save_all=True, append_images=[preview])
    with Image.open(path) as im:
        assert im.format == "MPO"
    img = load_image(path)
    assert img.rgb.shape == (48, 64, 3) and img.rgb[24, 32, 0] > 150
