"""Images as users keep them: marking in the input's own mode (ganprint.image_modes) and files read and
written with their metadata (ganprint.image_files). No codec here: a residual is added by hand."""

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageCms, JpegImagePlugin, PngImagePlugin

from ganprint.errors import BadImageError, GanprintError
from ganprint.image_files import JPEG_SUBSAMPLING, ImageFile, read_image_file, write_image_file
from ganprint.image_modes import marked_like, marked_like_rgb16, rgb16_for_marking, rgb_for_marking

RNG = np.random.default_rng(0)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def noise(shape, dtype=np.uint8, high=256):
    return RNG.integers(0, high, shape, dtype=np.int64).astype(dtype)


def camera_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "ganprint-test"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:05:06 07:08:09"
    return exif


# ------------------------------------------------------------------------------------- image_modes


@pytest.mark.parametrize(
    "mode, out_mode",
    [("RGB", "RGB"), ("RGBA", "RGBA"), ("L", "L"), ("LA", "LA"), ("I;16", "I;16"), ("I", "I"), ("F", "F"),
     ("P", "RGB"), ("PA", "RGBA"), ("CMYK", "RGB"), ("1", "L")],
)  # fmt: skip
def test_unmarked_round_trip_is_exact_in_each_mode(mode, out_mode):
    """Without a residual, every mode comes back with its own values (P/CMYK: their RGB conversion)."""
    base = Image.fromarray(noise((9, 13, 4))).convert("RGBA" if "A" in mode else "RGB")
    if mode in ("I;16", "I"):
        im = Image.fromarray(noise((9, 13), np.uint16, 65536))
        im = im if mode == "I;16" else im.convert("I")
    elif mode == "F":
        im = Image.fromarray(RNG.random((9, 13)).astype(np.float32))
    else:
        im = base.convert(mode)
    x = rgb_for_marking(im)
    assert x.shape == (3, 9, 13) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    out = marked_like(im, x)
    assert out.mode == out_mode and out.size == im.size
    expected = im.convert(out_mode) if mode in ("P", "PA", "CMYK", "1") else im
    if mode == "F":
        np.testing.assert_allclose(np.asarray(out), np.asarray(im), atol=1e-6)
    else:
        assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_sixteen_bit_grey_takes_the_residual_at_sixteen_bits():
    """A residual of 3/65535 moves a 16-bit image by 3 levels: it is not rounded to 8 bits on the way."""
    values = noise((8, 8), np.uint16, 60000).astype(np.uint16) + 1000
    im = Image.fromarray(values)
    out = marked_like(im, rgb_for_marking(im) + 3 / 65535)
    assert out.mode == "I;16"
    assert np.array_equal(np.asarray(out).astype(np.int64), values.astype(np.int64) + 3)


def test_alpha_is_copied_unchanged_and_grey_stays_grey():
    for mode in ("RGBA", "LA"):
        im = Image.fromarray(noise((12, 10, 4))).convert(mode)
        marked = (rgb_for_marking(im) + torch.randn(3, 12, 10) * 0.05).clamp(0, 1)
        out = marked_like(im, marked)
        assert out.mode == mode
        assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(im.getchannel("A")))
        assert not np.array_equal(np.asarray(out), np.asarray(im))  # the colour did change
    grey = Image.fromarray(noise((6, 7)))
    marked = rgb_for_marking(grey).clone()
    marked[0] += 3 / 255  # a residual in one channel: the grey moves by its mean, one level
    assert np.array_equal(np.asarray(marked_like(grey, marked)).astype(int), np.minimum(np.asarray(grey).astype(int) + 1, 255))


def test_palette_transparency_becomes_alpha():
    im = Image.fromarray(noise((8, 8, 3))).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.info["transparency"] = 0
    out = marked_like(im, rgb_for_marking(im))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out.getchannel("A")) == 0, np.asarray(im) == 0)


def test_marked_image_keeps_exif_dpi_and_a_matching_icc_profile():
    rgb = Image.fromarray(noise((8, 8, 3)))
    rgb.info.update(exif=camera_exif(1).tobytes(), dpi=(72, 72), icc_profile=SRGB)
    out = marked_like(rgb, rgb_for_marking(rgb))
    assert out.info["exif"] == rgb.info["exif"] and out.info["icc_profile"] == SRGB and out.info["dpi"] == (72, 72)
    cmyk = rgb.convert("CMYK")
    cmyk.info.update(icc_profile=b"a CMYK profile")
    assert "icc_profile" not in marked_like(cmyk, rgb_for_marking(cmyk)).info


def test_marked_like_refuses_another_size():
    with pytest.raises(GanprintError, match="original 5x4"):
        marked_like(Image.new("RGB", (5, 4)), torch.zeros(3, 5, 4))


def test_sixteen_bit_colour_arrays_keep_alpha_and_precision():
    pixels = noise((5, 6, 4), np.uint16, 60000)
    x = rgb16_for_marking(pixels)
    assert x.shape == (3, 5, 6)
    out = marked_like_rgb16(pixels, x + 2 / 65535)
    assert out.dtype == np.uint16
    assert np.array_equal(out[..., 3], pixels[..., 3])
    assert np.array_equal(out[..., :3].astype(int), pixels[..., :3].astype(int) + 2)


# ------------------------------------------------------------------------------------- image_files


def test_exif_orientation_is_applied_and_reset_other_tags_kept(tmp_path):
    pixels = noise((20, 30, 3))
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, quality=95, exif=camera_exif(6).tobytes(), icc_profile=SRGB)
    f = read_image_file(path)
    with Image.open(path) as raw:
        upright = np.asarray(raw.transpose(Image.Transpose.ROTATE_270))
    assert f.image.size == (20, 30)  # was 30 wide, 20 high: rotated upright
    assert np.array_equal(np.asarray(f.image), upright)
    exif = Image.Exif()
    exif.load(f.exif)
    assert exif[ExifTags.Base.Orientation] == 1 and exif[ExifTags.Base.Make] == "ganprint-test"
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:05:06 07:08:09"
    assert f.icc_profile == SRGB


def _png_with_metadata(path, image):
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "a test")
    info.add_itxt("Description", "Zoë's photo", lang="en", tkey="Beschreibung")
    image.save(path, pnginfo=info, exif=camera_exif(1).tobytes(), icc_profile=SRGB, dpi=(300, 300))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_metadata_survives_a_write(tmp_path, fmt):
    _png_with_metadata(tmp_path / "in.png", Image.fromarray(noise((16, 24, 3))))
    f = read_image_file(tmp_path / "in.png")
    assert f.text == {"Title": "a test", "Description": "Zoë's photo"} and f.dpi is not None
    out = tmp_path / f"out.{fmt}"
    write_image_file(out, f.image, f, fmt, quality=90)
    g = read_image_file(out)
    assert g.image.size == (24, 16) and g.image.mode == "RGB"
    exif = Image.Exif()
    exif.load(g.exif)
    assert exif[ExifTags.Base.Make] == "ganprint-test"
    assert g.icc_profile == SRGB
    if fmt == "png":
        assert g.text == f.text and isinstance(g.text["Description"], PngImagePlugin.iTXt)
        assert g.text["Description"].tkey == "Beschreibung"
        assert np.array_equal(np.asarray(g.image), np.asarray(f.image))
    if fmt in ("png", "jpeg"):
        assert g.dpi == pytest.approx((300, 300), abs=0.01)
    if fmt == "jpeg":
        with Image.open(out) as im:
            assert JpegImagePlugin.get_sampling(im) == {"4:4:4": 0, "4:2:0": 2}[JPEG_SUBSAMPLING]


def test_webp_keeps_alpha_byte_for_byte_and_jpeg_refuses_it(tmp_path):
    rgba = Image.fromarray(noise((20, 20, 4)))
    f = read_image_file(_saved(rgba, tmp_path / "in.png"))
    write_image_file(tmp_path / "out.webp", f.image, f, "webp", quality=80)
    with Image.open(tmp_path / "out.webp") as back:
        assert back.mode == "RGBA"
        assert np.array_equal(np.asarray(back.getchannel("A")), np.asarray(rgba.getchannel("A")))
    with pytest.raises(BadImageError, match="alpha channel, which JPEG cannot hold; use --format png or webp"):
        write_image_file(tmp_path / "out.jpg", f.image, f, "jpeg")
    assert not (tmp_path / "out.jpg").exists() and not list(tmp_path.glob(".out.jpg*"))  # nothing half-written


def _saved(image, path, **options):
    image.save(path, **options)
    return path


def test_greyscale_and_sixteen_bit_files(tmp_path):
    grey16 = noise((10, 12), np.uint16, 65536)
    f = read_image_file(_saved(Image.fromarray(grey16), tmp_path / "g16.png"))
    assert f.image.mode == "I;16"
    write_image_file(tmp_path / "g16-out.png", f.image, f, "png")
    with Image.open(tmp_path / "g16-out.png") as back:
        assert back.mode == "I;16" and np.array_equal(np.asarray(back), grey16)
    write_image_file(tmp_path / "g16-out.jpg", f.image, f, "jpeg", quality=100)
    with Image.open(tmp_path / "g16-out.jpg") as back:  # JPEG is 8-bit: the 16-bit values rounded
        assert back.mode == "L"
        assert np.abs(np.asarray(back).astype(int) - np.round(grey16 / 257)).max() <= 2
    grey_profile = SRGB[:16] + b"GRAY" + SRGB[20:]  # only the header's colour space is looked at
    grey = read_image_file(_saved(Image.fromarray(noise((10, 12))), tmp_path / "g.png", icc_profile=grey_profile))
    write_image_file(tmp_path / "g-out.png", grey.image, grey, "png")
    with Image.open(tmp_path / "g-out.png") as back:
        assert back.mode == "L" and back.info["icc_profile"] == grey_profile
    write_image_file(tmp_path / "g.webp", grey.image, grey, "webp")  # WebP has no grey: stored as RGB ...
    with Image.open(tmp_path / "g.webp") as back:
        assert back.mode == "RGB" and "icc_profile" not in back.info  # ... where a grey profile does not fit


def test_sixteen_bit_colour_png_read_and_written_at_sixteen_bits(tmp_path):
    import cv2

    pixels = noise((14, 9, 4), np.uint16, 65536)
    cv2.imwrite(str(tmp_path / "deep.png"), pixels[..., [2, 1, 0, 3]])
    f = read_image_file(tmp_path / "deep.png")
    assert f.deep is not None and np.array_equal(f.deep, pixels)
    assert f.image.size == (9, 14) and f.image.mode == "RGBA"  # PIL's 8-bit view, for detection
    f.text, f.icc_profile = {"Title": "deep"}, SRGB
    write_image_file(tmp_path / "deep-out.png", f.deep, f, "png")
    g = read_image_file(tmp_path / "deep-out.png")  # PIL checks every chunk's CRC on reading
    assert np.array_equal(g.deep, pixels) and g.text == {"Title": "deep"} and g.icc_profile == SRGB
    write_image_file(tmp_path / "deep-out.webp", f.deep, f, "webp", quality=100)
    with Image.open(tmp_path / "deep-out.webp") as back:
        assert back.mode == "RGBA" and np.array_equal(np.asarray(back)[..., 3], np.round(pixels[..., 3] / 257))


def test_sixteen_bit_colour_is_rotated_like_the_pixels(tmp_path):
    import cv2

    pixels = noise((6, 10, 3), np.uint16, 65536)
    sideways = ImageFile(image=Image.new("RGB", (10, 6)), exif=camera_exif(8).tobytes())  # written as stored
    write_image_file(tmp_path / "sideways.png", pixels, sideways, "png")
    f = read_image_file((tmp_path / "sideways.png").read_bytes(), name="sideways.png")
    assert f.deep.shape == (10, 6, 3) and f.image.size == (6, 10)
    assert np.array_equal(f.deep, np.rot90(pixels, 1))  # orientation 8: turned 90 degrees counter-clockwise
    assert np.array_equal(f.deep >> 8, np.asarray(f.image))  # the same turn as PIL's 8-bit pixels


def test_bad_files_are_bad_images(tmp_path):
    good = _saved(Image.fromarray(noise((40, 40, 3))), tmp_path / "good.png")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:300])
    with pytest.raises(BadImageError, match=r"cut.png: truncated image data"):
        read_image_file(tmp_path / "cut.png")
    with pytest.raises(BadImageError, match="empty file"):
        read_image_file(b"", name="nothing.png")
    with pytest.raises(BadImageError, match="not a recognised image file"):
        read_image_file(b"not an image", name="text.png")


def test_a_refused_write_is_a_bad_image_and_leaves_no_file(tmp_path):
    im = Image.new("RGB", (8, 8))
    too_long = ImageFile(image=im, exif=b"Exif\x00\x00" + bytes(70000))  # a JPEG segment holds 64 kB
    with pytest.raises(BadImageError, match="out.jpg: cannot be written as JPEG .EXIF data is too long"):
        write_image_file(tmp_path / "out.jpg", im, too_long, "jpeg")
    assert list(tmp_path.iterdir()) == []
