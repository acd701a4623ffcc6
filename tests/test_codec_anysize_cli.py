"""The any-size codec on images as users keep them: the Python API returns each image in its own size
and mode, and `codec embed` / `codec detect` on a folder mixing sizes, modes and formats.

An untrained codec (fixed seed) checks the plumbing: sizes, modes, alpha, metadata, files, errors. Its
bit accuracies mean nothing; the round trip that must read the fingerprint back uses the shipped model."""

from importlib import resources

import numpy as np
import pytest
import torch
from helpers import cli_exit_code
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from ganprint.codec.anysize import AnySizeConfig
from ganprint.codec.anysize_codec import AnySizeCodec
from ganprint.image_files import read_image_file

RNG = np.random.default_rng(1)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
BITS = "01" * 50


def photo(height: int, width: int, channels: int = 3) -> np.ndarray:
    """Smooth colour with texture on top: enough signal for a verdict, unlike a flat image."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([128 + 60 * np.sin(x / 7 + c) * np.cos(y / 11) for c in range(channels)], axis=-1)
    return np.clip(base + RNG.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return AnySizeCodec(AnySizeConfig()).eval()


@pytest.fixture(scope="module")
def model_dir(codec, tmp_path_factory):
    path = tmp_path_factory.mktemp("anysize-model")
    codec.save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------ API


@pytest.mark.parametrize(
    "mode, out_mode",
    [("RGB", "RGB"), ("L", "L"), ("I;16", "I;16"), ("RGBA", "RGBA"), ("LA", "LA"), ("P", "RGB"), ("CMYK", "RGB")],
)
def test_embed_returns_a_pil_image_of_the_same_size_and_mode(codec, mode, out_mode):
    """P and CMYK come back as RGB: a palette cannot hold a residual, CMYK is converted (image_modes)."""
    rgba = Image.fromarray(photo(70, 90, 4))
    im = Image.fromarray((np.asarray(rgba.convert("L")).astype(np.uint16) * 257)) if mode == "I;16" else rgba.convert(mode)
    out = codec.embed(im, BITS)
    assert isinstance(out, Image.Image) and out.size == (90, 70) and out.mode == out_mode
    assert not np.array_equal(np.asarray(out), np.asarray(im.convert(out_mode)))  # it was marked
    if "A" in mode:
        assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(im.getchannel("A")))
    if mode == "I;16":  # the residual is added at 16 bits, not 8: values between the 257-steps of 8-bit grey
        assert (np.asarray(out).astype(int) % 257 != 0).mean() > 0.5


def test_embed_takes_a_rotated_photo_as_given_and_a_list_of_sizes(codec, tmp_path):
    """The API marks pixels as given (EXIF kept in .info); reading a file upright is image_files' job."""
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(photo(64, 96)).save(path, quality=95, exif=exif.tobytes())
    with Image.open(path) as sideways:
        out = codec.embed(sideways, BITS)
        assert out.size == (96, 64) and out.info["exif"] == sideways.info["exif"]
    upright = read_image_file(path).image
    marked = codec.embed([upright, Image.fromarray(photo(80, 80))], BITS)
    assert [m.size for m in marked] == [(64, 96), (80, 80)]
    assert codec.decode_logits(marked).shape == (2, 100)


def test_embed_refuses_images_outside_the_size_limits(codec):
    with pytest.raises(Exception, match="too small for this codec .shorter side at least 64 px"):
        codec.embed(Image.new("RGB", (200, 40)), BITS)


# ------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def mixed_folder(tmp_path):
    """A folder as a user keeps one: sizes, formats and modes mixed, metadata, and two bad files."""
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "harbour")
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "ganprint-test"
    Image.fromarray(photo(72, 120)).save(folder / "harbour.png", pnginfo=info, icc_profile=SRGB, exif=exif.tobytes())
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(photo(64, 100)).save(folder / "trip" / "phone.jpg", quality=92, exif=exif.tobytes(), icc_profile=SRGB)
    Image.fromarray(photo(96, 80, 4)).save(folder / "logo.webp", lossless=True)
    Image.fromarray(photo(66, 66)).convert("L").save(folder / "grey.png")
    Image.fromarray(photo(40, 120)).save(folder / "strip.png")  # too small: 40 px high
    (folder / "cut.jpg").write_bytes((folder / "trip" / "phone.jpg").read_bytes()[:400])  # truncated
    return folder


def test_cli_embed_and_detect_a_mixed_folder(model_dir, mixed_folder, tmp_path, capsys):
    out = tmp_path / "marked"
    code = cli_exit_code(["codec", "embed", "--model", model_dir, "--data_dir", mixed_folder, "--output_dir", out,
                          "--fingerprint", BITS, "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert "strip.png: 120x40 is too small for this codec (shorter side at least 64 px)" in err
    assert "cut.jpg: truncated image data" in err
    images = out / "fingerprinted_images"
    assert sorted(p.name for p in images.iterdir()) == ["grey.png", "harbour.png", "logo.png", "trip__phone.png"]
    lines = (out / "embedded_fingerprints.txt").read_text().split("\n")
    assert lines[:-1] == [f"{n} {BITS}" for n in ["grey.png", "harbour.png", "logo.png", "trip__phone.png"]]
    harbour = read_image_file(images / "harbour.png")
    assert harbour.image.size == (120, 72) and harbour.text == {"Title": "harbour"} and harbour.icc_profile == SRGB
    phone = read_image_file(images / "trip__phone.png")
    assert phone.image.size == (64, 100)  # upright: the EXIF orientation was applied ...
    exif = Image.Exif()
    exif.load(phone.exif)
    assert exif[ExifTags.Base.Orientation] == 1 and exif[ExifTags.Base.Make] == "ganprint-test"  # ... and reset
    with Image.open(images / "logo.png") as logo, Image.open(mixed_folder / "logo.webp") as original:
        assert logo.mode == "RGBA" and np.array_equal(np.asarray(logo)[..., 3], np.asarray(original)[..., 3])
    with Image.open(images / "grey.png") as grey:
        assert grey.mode == "L" and grey.size == (66, 66)

    det = tmp_path / "det"
    code = cli_exit_code(["codec", "detect", "--model", model_dir, "--data_dir", images, "--output_dir", det,
                          "--expected", out / "embedded_fingerprints.txt", "--json", "--quiet"])  # fmt: skip
    assert code == 0
    rows = (det / "detection_report.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["grey.png", "harbour.png", "logo.png", "trip__phone.png"]
    assert "no expected fingerprint" not in capsys.readouterr().err


def test_cli_embed_as_jpeg_keeps_metadata_and_skips_alpha(model_dir, mixed_folder, tmp_path, capsys):
    out = tmp_path / "marked"
    code = cli_exit_code(["codec", "embed", "--model", model_dir, "--data_dir", mixed_folder, "--output_dir", out,
                          "--identical_fingerprints", "--format", "jpeg", "--quality", "90", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert "logo.webp: has an alpha channel, which JPEG cannot hold; use --format png or webp" in err
    images = out / "fingerprinted_images"
    assert sorted(p.name for p in images.iterdir()) == ["grey.jpg", "harbour.jpg", "trip__phone.jpg"]
    harbour = read_image_file(images / "harbour.jpg")
    assert harbour.image.size == (120, 72) and harbour.icc_profile == SRGB
    exif = Image.Exif()
    exif.load(harbour.exif)
    assert exif[ExifTags.Base.Make] == "ganprint-test"
    with Image.open(images / "grey.jpg") as grey:
        assert grey.mode == "L" and grey.format == "JPEG"
    det = tmp_path / "det"
    assert cli_exit_code(["codec", "detect", "--model", model_dir, "--data_dir", images, "--output_dir", det,
                          "--expected", out, "--quiet"]) == 0  # fmt: skip
    assert len((det / "detection_report.csv").read_text().splitlines()) == 4


def test_cli_strict_stops_at_the_first_bad_image_and_writes_nothing(model_dir, mixed_folder, tmp_path, capsys):
    out = tmp_path / "marked"
    code = cli_exit_code(["codec", "embed", "--model", model_dir, "--data_dir", mixed_folder, "--output_dir", out,
                          "--identical_fingerprints", "--strict", "--quiet"])  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err
    assert "error: " in err and ("cut.jpg: truncated image data" in err or "too small for this codec" in err)
    assert not (out / "embedded_fingerprints.txt").exists()
    assert not (out / "fingerprinted_images").exists()
    assert [p.name for p in out.iterdir()] == []  # no staging folder or temporary file left


def test_cli_fixed_resolution_options_are_refused_for_any_size(model_dir, mixed_folder, tmp_path, capsys):
    code = cli_exit_code(["codec", "embed", "--model", model_dir, "--data_dir", mixed_folder, "--output_dir",
                          tmp_path / "o", "--identical_fingerprints", "--quiet", "--use_celeba_preprocessing"])  # fmt: skip
    assert code != 0 and "--use_celeba_preprocessing is for fixed-resolution codecs" in capsys.readouterr().err


def test_cli_refine_steps_reach_an_any_size_codec(model_dir, mixed_folder, tmp_path):
    """--refine-steps N refines colour images too (codec/anysize_refine.py): the written pixels change."""
    runs = {}
    for steps in ("0", "2"):
        out = tmp_path / steps
        assert cli_exit_code(["codec", "embed", "--model", model_dir, "--data_dir", mixed_folder, "--output_dir", out,
                              "--fingerprint", BITS, "--quiet", "--refine-steps", steps]) == 0  # fmt: skip
        with Image.open(out / "fingerprinted_images" / "harbour.png") as im:
            runs[steps] = np.asarray(im).copy()
    assert not np.array_equal(runs["0"], runs["2"])


def test_cli_format_needs_an_any_size_codec(mixed_folder, tmp_path, capsys):
    code = cli_exit_code(["codec", "embed", "--model", "codec-32", "--data_dir", mixed_folder, "--output_dir",
                          tmp_path / "o", "--identical_fingerprints", "--format", "webp", "--quiet"])  # fmt: skip
    assert code != 0 and "--format webp needs an any-size codec" in capsys.readouterr().err


# ------------------------------------------------------------------------------- the shipped model


def _shipped(name: str) -> bool:
    return resources.files("ganprint").joinpath("assets", "models", name, "model.safetensors").is_file()


@pytest.mark.skipif(not _shipped("codec-any"), reason="codec-any (the shipped any-size model) is still being "
                    "trained; it lands in src/ganprint/assets/models/codec-any/")  # fmt: skip
def test_shipped_codec_reads_its_fingerprint_back_from_pngs_of_any_size(tmp_path, capsys):
    from ganprint.demo import demo_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    (_, astronaut), (_, coffee) = demo_photos()
    astronaut.save(folder / "astronaut.png")  # 512x512
    coffee.save(folder / "coffee.jpg", quality=95)  # 600x400
    coffee.crop((0, 0, 300, 200)).save(folder / "cat.png")
    out, det = tmp_path / "marked", tmp_path / "det"
    assert cli_exit_code(["codec", "embed", "--model", "codec-any", "--data_dir", folder, "--output_dir", out,
                          "--quiet"]) == 0  # fmt: skip
    assert cli_exit_code(["codec", "detect", "--model", "codec-any", "--data_dir", out / "fingerprinted_images",
                          "--output_dir", det, "--expected", out, "--quiet"]) == 0  # fmt: skip
    rows = [r.split(",") for r in (det / "detection_report.csv").read_text().splitlines()[1:]]
    assert len(rows) == 3
    assert all(float(r[1]) > 0.9 for r in rows), rows


@pytest.mark.skipif(not _shipped("codec-any"), reason="codec-any is not shipped yet")
@pytest.mark.xfail(strict=True, reason="codec-any's decoder reads colour: its residual averaged to grey reads 0.52 "
                   "on this crop, and informed embedding with a grey residual (the default for greyscale) lifts it to "
                   "0.73 only, at 2x the energy 0.85 (docs/codec-design.md); greyscale needs a grey-aware decoder")  # fmt: skip
def test_shipped_codec_reads_its_fingerprint_back_from_a_greyscale_image():
    from ganprint.demo import demo_photos

    from ganprint.codec.importing import load_codec

    codec = load_codec("codec-any")
    bits = torch.randint(0, 2, (codec.config.fingerprint_length,), generator=torch.Generator().manual_seed(0)).float()
    grey = demo_photos()[1][1].crop((0, 0, 300, 200)).convert("L")
    marked = codec.embed(grey, bits)
    assert marked.mode == "L"
    assert float(((codec.decode_logits([marked])[0] > 0).float() == bits).float().mean()) > 0.9
