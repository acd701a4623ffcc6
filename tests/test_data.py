"""Tests for ganprint.data: decoding, preprocessing, sources, batching and splits."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganprint import data
from ganprint.data import (
    ImageDataset,
    TrainingImages,
    collate_skip_bad,
    iterate_batches,
    load_image,
    open_source,
    pil_to_tensor,
    preprocess,
    split_indices,
    tensor_to_pil,
    unique_output_names,
)
from ganprint.errors import BadImageError, GanprintError


def solid(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> Image.Image:
    return Image.new("RGB", size, color)


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def write(path: Path, content: bytes | Image.Image, fmt: str = "PNG", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else png_bytes(content, fmt, **kw))
    return path


def noise(seed: int, h: int = 40, w: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def grey_values(path: Path) -> list:
    """First channel of a decoded image, as nested lists."""
    return pixels(load_image(path))[..., 0].tolist()


def pixels(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img)


def idx_bytes(images: np.ndarray, magic: bytes = b"\x00\x00\x08\x03") -> bytes:
    n, rows, cols = images.shape
    header = magic + b"".join(v.to_bytes(4, "big") for v in (n, rows, cols))
    return header + images.astype(np.uint8).tobytes()


def tiny_idx(n: int = 12, rows: int = 3, cols: int = 4) -> np.ndarray:
    return (np.arange(n * rows * cols) % 251).astype(np.uint8).reshape(n, rows, cols)


# ----------------------------------------------------------------------------- mode conversions


def test_greyscale_and_bilevel_become_rgb(tmp_path):
    grey = load_image(write(tmp_path / "l.png", Image.new("L", (3, 2), 77)))
    assert pixels(grey).shape == (2, 3, 3)
    assert (pixels(grey) == 77).all()
    bilevel = Image.new("1", (2, 1))
    bilevel.putpixel((1, 0), 1)
    out = load_image(write(tmp_path / "b.png", bilevel))
    assert pixels(out).tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_palette_with_transparency_is_composited_over_white(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    out = load_image(write(tmp_path / "p.png", img, transparency=0))
    assert pixels(out).tolist() == [[[255, 255, 255], [0, 0, 255]]]


def test_rgba_is_composited_over_white_exactly(tmp_path):
    img = Image.new("RGBA", (3, 1))
    img.putdata([(200, 100, 0, 128), (10, 20, 30, 0), (10, 20, 30, 255)])
    out = pixels(load_image(write(tmp_path / "rgba.png", img)))
    half = [(c * 128 + 255 * 127 + 127) // 255 for c in (200, 100, 0)]
    assert half == [227, 177, 127]
    assert out.tolist() == [[half, [255, 255, 255], [10, 20, 30]]]


def test_la_is_composited_over_white(tmp_path):
    img = Image.new("LA", (2, 1))
    img.putdata([(50, 0), (50, 255)])
    assert pixels(load_image(write(tmp_path / "la.png", img))).tolist() == [[[255] * 3, [50] * 3]]


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32896, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    out = pixels(load_image(write(tmp_path / "g16.png", img)))
    assert out[..., 0].tolist() == [[0, 1, 4, 128, 255]]
    assert (out[..., 0] == out[..., 2]).all()


def test_32_bit_integer_greyscale_scaled_by_its_range(tmp_path):
    sixteen = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.int32))
    assert sixteen.mode == "I"
    assert grey_values(write(tmp_path / "i16.tif", sixteen, "TIFF")) == [[0, 128, 255]]
    eight = Image.fromarray(np.array([[0, 100, 200]], dtype=np.int32))
    assert grey_values(write(tmp_path / "i8.tif", eight, "TIFF")) == [[0, 100, 200]]


def test_float_greyscale_in_unit_range_is_scaled(tmp_path):
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert img.mode == "F"
    assert grey_values(write(tmp_path / "f.tif", img, "TIFF")) == [[0, 128, 255]]


def test_cmyk_becomes_rgb(tmp_path):
    img = Image.new("CMYK", (3, 1))
    img.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)])
    out = pixels(load_image(write(tmp_path / "cmyk.tif", img, "TIFF")))
    assert out.tolist() == [[[255, 255, 255], [0, 255, 255], [0, 0, 0]]]
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    jpeg = load_image(write(tmp_path / "cmyk.jpg", cyan, "JPEG", quality=95))
    assert np.abs(pixels(jpeg).astype(int) - [0, 255, 255]).max() <= 3


def test_exif_orientation_is_applied(tmp_path):
    img = solid((0, 0, 0), (30, 20))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = load_image(write(tmp_path / "rot.png", img, exif=exif))
    assert out.size == (20, 30)
    assert pixels(out)[0, 19].tolist() == [255, 255, 255]


def test_bytes_input_and_rgb_passthrough():
    img = noise(0, 5, 7)
    out = load_image(png_bytes(img), name="mem.png")
    assert np.array_equal(pixels(out), np.asarray(img))


# ----------------------------------------------------------------------------- bad files


def assert_bad(path_or_bytes, name: str, reason: str, label: str | None = None) -> None:
    with pytest.raises(BadImageError) as info:
        load_image(path_or_bytes, name=label)
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    assert reason in message
    assert "\n" not in message


def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path):
    good_png, good_jpg = png_bytes(noise(1)), png_bytes(noise(2), "JPEG")
    cases = {
        "empty.png": (b"", "empty file"),
        "cut.png": (good_png[: len(good_png) // 2], "truncated"),
        "cut.jpg": (good_jpg[: len(good_jpg) // 2], "truncated"),
        "text.png": (b"this is not an image\n", "not a recognised image file"),
    }
    for filename, (content, reason) in cases.items():
        path = write(tmp_path / filename, content)
        assert_bad(path, str(path), reason)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert_bad(folder, str(folder), "is a directory")
    assert_bad(tmp_path / "missing.png", str(tmp_path / "missing.png"), "no such file")
    assert_bad(b"garbage", "zip:x.png", "not a recognised image file", label="zip:x.png")


def test_decompression_bomb_is_a_bad_image(tmp_path, monkeypatch):
    path = write(tmp_path / "big.png", solid((1, 2, 3), (20, 20)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 400 pixels: PIL only warns
    assert_bad(path, str(path), "too many pixels")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 400 > 2 * 100: PIL raises
    assert_bad(path, str(path), "too many pixels")


def test_other_formats_are_refused(tmp_path):
    path = write(tmp_path / "x.png", solid((1, 2, 3)), "PPM")
    assert_bad(path, str(path), "not a recognised image file")


# ----------------------------------------------------------------------------- preprocessing


def bands(size: tuple[int, int], colors, vertical: bool) -> Image.Image:
    """Equal bands of `colors`, side by side (vertical=True) or stacked."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    k = len(colors)
    for j, c in enumerate(colors):
        if vertical:
            arr[:, j * w // k : (j + 1) * w // k] = c
        else:
            arr[j * h // k : (j + 1) * h // k, :] = c
    return Image.fromarray(arr)


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_preprocess_landscape_keeps_the_centre():
    out = preprocess(bands((300, 100), [RED, GREEN, BLUE], vertical=True), 50)
    assert out.size == (50, 50)
    middle = pixels(out)[:, 5:45].astype(int)
    assert (np.abs(middle - GREEN) <= 2).all()


def test_preprocess_portrait_keeps_the_centre():
    out = preprocess(bands((100, 300), [RED, GREEN, BLUE], vertical=False), 50)
    assert out.size == (50, 50)
    middle = pixels(out)[5:45, :].astype(int)
    assert (np.abs(middle - GREEN) <= 2).all()


@pytest.mark.parametrize("size", [(333, 100), (100, 333), (65, 64), (10, 17), (128, 128)])
def test_preprocess_output_size(size):
    assert preprocess(solid((9, 9, 9), size), 64).size == (64, 64)


def test_preprocess_identity_when_already_the_right_size():
    img = noise(3, 64, 64)
    assert preprocess(img, 64) is img
    assert preprocess(img, 64, celeba=True) is img


def test_preprocess_crops_without_resampling_when_short_side_matches():
    img = noise(4, 64, 100)
    assert np.array_equal(pixels(preprocess(img, 64)), np.asarray(img)[:, 18:82])


def test_celeba_crop_box():
    arr = np.random.default_rng(5).integers(0, 256, (218, 178, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    assert np.array_equal(pixels(preprocess(img, 148, celeba=True)), arr[35:183, 15:163])

    # Outside the box: green; inside: red top-left quarter, blue elsewhere.
    marked = np.zeros((218, 178, 3), np.uint8)
    marked[:] = GREEN
    marked[35:183, 15:163] = BLUE
    marked[35:109, 15:89] = RED
    out = pixels(preprocess(Image.fromarray(marked), 128, celeba=True)).astype(int)
    assert out.shape == (128, 128, 3)
    assert (np.abs(out[:60, :60] - RED) <= 2).all()
    assert (np.abs(out[68:, 68:] - BLUE) <= 2).all()
    assert out[..., 1].max() <= 2  # nothing from outside the box


def test_celeba_rejects_images_smaller_than_the_crop():
    with pytest.raises(BadImageError, match="smaller than the 148x148"):
        preprocess(solid((0, 0, 0), (140, 200)), 128, celeba=True)


def test_tensor_conversions_round_trip_and_round():
    arr = np.random.default_rng(6).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    t = pil_to_tensor(Image.fromarray(arr))
    assert t.shape == (3, 5, 6) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    assert np.array_equal(np.asarray(tensor_to_pil(t)), arr)
    edge = torch.tensor([-1.0, 2.0, 127.6 / 255, 127.4 / 255]).view(1, 2, 2).expand(3, 2, 2)
    assert np.asarray(tensor_to_pil(edge))[..., 0].tolist() == [[0, 255], [128, 127]]
    with pytest.raises(ValueError):
        pil_to_tensor(Image.new("L", (2, 2)))


# ----------------------------------------------------------------------------- output names


def test_unique_output_names():
    assert unique_output_names(["x.jpg", "sub/dir/y.png"]) == ["x.png", "sub__dir__y.png"]
    assert unique_output_names(["a.jpg", "a.png", "b.png"]) == ["a-jpg.png", "a-png.png", "b.png"]
    assert unique_output_names(["A.png", "a.png"]) == ["A-png.png", "a-png-2.png"]
    # A generated name may not take an existing plain name.
    assert unique_output_names(["a-jpg.png", "a.jpg", "a.png"]) == [
        "a-jpg.png",
        "a-jpg-2.png",
        "a-png.png",
    ]
    assert unique_output_names(["d/x.png", "d__x.png"]) == ["d__x-png.png", "d__x-png-2.png"]
    names = [f"{d}/{s}.{e}" for d in "ab" for s in "xX" for e in ("png", "PNG", "jpg")]
    out = unique_output_names(names, suffix=".webp")
    assert len({n.casefold() for n in out}) == len(names)
    assert all(n.endswith(".webp") for n in out)
    assert unique_output_names(names, suffix=".webp") == out


# ----------------------------------------------------------------------------- sources


def make_folder(root: Path) -> list[str]:
    write(root / "a.PNG", solid(RED))
    write(root / "sub" / "b.JpG", solid(GREEN), "JPEG")
    write(root / "sub" / "deeper" / "c.jpeg", solid(BLUE), "JPEG")
    write(root / "d.WebP", solid(RED), "WEBP", lossless=True)
    write(root / "e.bmp", solid(GREEN), "BMP")
    write(root / "notes.txt", b"not an image")
    write(root / ".hidden.png", solid(RED))
    write(root / ".hiddendir" / "x.png", solid(RED))
    write(root / "sub" / ".x.png", solid(RED))
    return ["a.PNG", "d.WebP", "e.bmp", "sub/b.JpG", "sub/deeper/c.jpeg"]


def test_folder_source_recursive_sorted_hidden_skipped(tmp_path):
    expected = make_folder(tmp_path / "imgs")
    source = open_source(tmp_path / "imgs")
    assert source.names == expected
    assert len(source) == 5
    assert pixels(source.image(2))[0, 0].tolist() == list(GREEN)
    assert source.location(3) == str(tmp_path / "imgs" / "sub" / "b.JpG")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_folder_source_survives_symlink_loops(tmp_path):
    expected = make_folder(tmp_path / "imgs")
    os.symlink(tmp_path / "imgs", tmp_path / "imgs" / "sub" / "loop")
    os.symlink(tmp_path / "imgs" / "sub", tmp_path / "imgs" / "zz-link")
    assert open_source(tmp_path / "imgs").names == expected


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_image_names_on_links_that_cannot_be_followed_are_bad_images(tmp_path):
    expected = make_folder(tmp_path / "imgs")
    os.symlink("l2.png", tmp_path / "imgs" / "l1.png")  # a loop of two links
    os.symlink("l1.png", tmp_path / "imgs" / "l2.png")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "imgs" / "m.png")  # a broken link
    source = open_source(tmp_path / "imgs")
    assert source.names == sorted(expected + ["l1.png", "l2.png", "m.png"])
    for name, reason in (("l1.png", "cannot read"), ("m.png", "no such file")):
        with pytest.raises(BadImageError, match=f"{name}: {reason}"):
            source.image(source.names.index(name))


def test_folder_without_images_and_missing_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    write(tmp_path / "textonly" / "a.txt", b"x")
    for name in ("empty", "textonly"):
        spec = str(tmp_path / name)
        with pytest.raises(GanprintError) as info:
            open_source(spec)
        looked = "looked for .png .jpg .jpeg .webp .bmp, recursively"
        assert str(info.value) == f"{spec}: no images found ({looked})"
    missing = str(tmp_path / "nope")
    with pytest.raises(GanprintError) as info:
        open_source(missing)
    assert str(info.value) == f"{missing}: no such file or directory"
    other = write(tmp_path / "model.pth", b"weights")
    with pytest.raises(GanprintError, match="model.pth: not a folder"):
        open_source(other)


def test_existing_path_wins_over_keywords(tmp_path, monkeypatch):
    write(tmp_path / "samples" / "mine.png", solid(RED))
    monkeypatch.chdir(tmp_path)
    assert open_source("samples").names == ["mine.png"]


def make_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("dir/", b"")
        zf.writestr("dir/sub/c.JPG", png_bytes(solid(BLUE), "JPEG"))
        zf.writestr("b.png", png_bytes(solid(GREEN)))
        zf.writestr("dir/a.png", png_bytes(solid(RED)))
        zf.writestr("bad.png", b"not a png")
        zf.writestr("__MACOSX/dir/._a.png", b"resource fork")
        zf.writestr("__MACOSX/b.png", png_bytes(solid(RED)))
        zf.writestr("readme.txt", b"hello")
        zf.writestr("dir/.hidden.png", png_bytes(solid(RED)))


def test_zip_source(tmp_path):
    make_zip(tmp_path / "set.zip")
    source = open_source(tmp_path / "set.zip")
    assert source.names == ["b.png", "bad.png", "dir/a.png", "dir/sub/c.JPG"]
    assert pixels(source.image(2))[0, 0].tolist() == list(RED)
    with pytest.raises(BadImageError, match=r"set\.zip:bad\.png: not a recognised"):
        source.image(1)
    skipped = []
    batches = list(iterate_batches(source, 8, batch_size=2, on_bad=lambda *bad: skipped.append(bad)))
    assert [names for names, _ in batches] == [["b.png"], ["dir/a.png", "dir/sub/c.JPG"]]
    assert [n for n, _ in skipped] == ["bad.png"]
    assert np.abs(batches[1][1][1, :, 0, 0].numpy() - [0, 0, 1]).max() < 0.02
    clone = pickle.loads(pickle.dumps(source))  # sources go to DataLoader workers
    assert np.array_equal(pixels(clone.image(0)), pixels(source.image(0)))


def test_zip_rejects_huge_members_and_bad_zips(tmp_path, monkeypatch):
    make_zip(tmp_path / "set.zip")
    source = open_source(tmp_path / "set.zip")
    monkeypatch.setattr(data, "_MAX_ZIP_MEMBER", 10)
    with pytest.raises(BadImageError, match="too large"):
        source.image(0)
    with pytest.raises(GanprintError, match="not a readable zip file"):
        open_source(write(tmp_path / "broken.zip", b"PK not really"))
    with zipfile.ZipFile(tmp_path / "none.zip", "w") as zf:
        zf.writestr("a.txt", b"x")
    with pytest.raises(GanprintError, match="no images found"):
        open_source(tmp_path / "none.zip")


def test_zip_source_with_worker_processes(tmp_path):
    make_zip(tmp_path / "set.zip")
    source = open_source(tmp_path / "set.zip")
    source.image(0)  # open the handle in this process before the workers start
    batches = iterate_batches(source, 8, 1, num_workers=2, on_bad=lambda name, message: None)
    names = [name for batch, _ in batches for name in batch]
    assert names == ["b.png", "dir/a.png", "dir/sub/c.JPG"]


@pytest.mark.parametrize("gz", [False, True])
def test_idx_source(tmp_path, gz):
    arr = tiny_idx()
    raw = idx_bytes(arr)
    path = tmp_path / ("tiny-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(raw) if gz else raw)
    source = open_source(path)
    assert len(source) == 12
    assert source.names[0] == "tiny-images-idx3-ubyte-00.png"
    assert source.names[-1] == "tiny-images-idx3-ubyte-11.png"
    img = source.image(7)
    assert img.size == (4, 3)
    assert np.array_equal(pixels(img), np.repeat(arr[7][..., None], 3, axis=2))


def test_idx_errors(tmp_path):
    raw = idx_bytes(tiny_idx())
    cases = {
        "cut-idx3-ubyte": raw[:-1],
        "long-idx3-ubyte": raw + b"\x00",
        "labels-idx3-ubyte": idx_bytes(tiny_idx(), magic=b"\x00\x00\x08\x01"),
        "header-idx3-ubyte": raw[:10],
        "cut-idx3-ubyte.gz": gzip.compress(raw)[:-30],
        "notgz-idx3-ubyte.gz": raw,
    }
    reasons = {
        "cut-idx3-ubyte": "truncated",
        "long-idx3-ubyte": "longer than its header",
        "labels-idx3-ubyte": "magic 0x00000801",
        "header-idx3-ubyte": "truncated",
        "cut-idx3-ubyte.gz": "cannot read idx file",
        "notgz-idx3-ubyte.gz": "cannot read idx file",
    }
    for name, content in cases.items():
        path = write(tmp_path / name, content)
        with pytest.raises(GanprintError) as info:
            open_source(path)
        assert str(info.value).startswith(f"{path}: "), str(info.value)
        assert reasons[name] in str(info.value)


def test_fashion_mnist_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "fm"
    monkeypatch.setenv("GANPRINT_FASHION_MNIST_DIR", str(folder))
    with pytest.raises(GanprintError) as info:
        open_source("fashion-mnist")
    install = "install it with: sudo apt-get install dataset-fashion-mnist"
    assert f"Fashion-MNIST not found at {folder}; {install}" in str(info.value)
    write(folder / "train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(tiny_idx(5))))
    write(folder / "t10k-images-idx3-ubyte.gz", gzip.compress(idx_bytes(tiny_idx(2))))
    assert len(open_source("fashion-mnist")) == 5
    assert len(open_source("fashion-mnist:train")) == 5
    test = open_source("fashion-mnist:test")
    assert test.names == ["t10k-images-idx3-ubyte-0.png", "t10k-images-idx3-ubyte-1.png"]
    assert test.spec == "fashion-mnist:test"


def test_samples_source():
    source = open_source("samples")
    assert len(source) == 64
    assert source.names == [f"sample-{k:02d}.png" for k in range(64)]
    for i in (0, 31, 63):
        assert source.image(i).size == (64, 64)
    assert preprocess(source.image(5), 64) is not None


# ----------------------------------------------------------------------------- batching


def test_iterate_batches_order_skip_and_strict(tmp_path, capsys):
    for k in range(7):
        write(tmp_path / "set" / f"img{k}.png", solid((k * 30, 0, 0), (20, 10)))
    write(tmp_path / "set" / "img3.png", b"broken")
    source = open_source(tmp_path / "set")
    batches = iterate_batches(source, 8, batch_size=3)
    assert iter(batches) is batches  # a generator: images are read as batches are consumed
    batches = list(batches)
    assert [names for names, _ in batches] == [
        ["img0.png", "img1.png", "img2.png"],
        ["img4.png", "img5.png"],
        ["img6.png"],
    ]
    assert batches[0][1].shape == (3, 3, 8, 8) and batches[0][1].dtype == torch.float32
    assert round(batches[1][1][1, 0, 0, 0].item() * 255) == 150
    assert f"warning: skipped {tmp_path / 'set' / 'img3.png'}: " in capsys.readouterr().err
    with pytest.raises(BadImageError, match="img3.png"):
        list(iterate_batches(source, 8, batch_size=3, strict=True))


def test_iterate_batches_all_bad(tmp_path):
    write(tmp_path / "bad" / "a.png", b"x")
    write(tmp_path / "bad" / "b.png", b"")
    spec = str(tmp_path / "bad")
    with pytest.raises(GanprintError) as info:
        list(iterate_batches(open_source(spec), 8, batch_size=1, on_bad=lambda n, m: None))
    assert str(info.value) == f"{spec}: none of the 2 images could be read"


def test_dataset_and_collate(tmp_path):
    write(tmp_path / "s" / "a.png", solid(RED, (10, 10)))
    write(tmp_path / "s" / "b.png", b"bad")
    dataset = ImageDataset(open_source(tmp_path / "s"), 4)
    assert dataset[0][0] == 0 and dataset[0][1].shape == (3, 4, 4)
    assert isinstance(dataset[1][1], str) and "b.png" in dataset[1][1]
    indices, images, bad = collate_skip_bad([dataset[0], dataset[1]])
    assert indices.tolist() == [0] and images.shape == (1, 3, 4, 4)
    assert [i for i, _ in bad] == [1]
    indices, images, bad = collate_skip_bad([dataset[1]])
    assert len(indices) == 0 and images.shape[0] == 0


def test_training_images_replace_bad_and_flip(tmp_path, capsys):
    for k in range(4):
        arr = np.zeros((6, 6, 3), np.uint8)
        arr[:, :3] = (k * 50, 0, 0)  # left half coloured, so a flip is visible
        write(tmp_path / "t" / f"{k}.png", Image.fromarray(arr))
    write(tmp_path / "t" / "1.png", b"bad")
    source = open_source(tmp_path / "t")
    train = TrainingImages(source, [0, 1, 2, 3], 6)
    assert len(train) == 4
    assert round(train[1][0, 0, 0].item() * 255) == 100  # image 1 is bad: image 2 instead
    train[1]
    assert capsys.readouterr().err.count("1.png") == 1  # warned once
    torch.manual_seed(0)
    flips = TrainingImages(source, [3], 6, hflip=True)
    left = {round(flips[0][0, 0, 0].item() * 255) for _ in range(20)}
    assert left == {0, 150}
    with pytest.raises(GanprintError, match="none of the 1 training images"):
        TrainingImages(source, [1], 6)[0]


def test_split_indices():
    train, val = split_indices(100)
    assert len(val) == 5 and len(train) == 95
    assert sorted(train + val) == list(range(100))
    assert split_indices(100) == (train, val)
    assert split_indices(100, seed=1)[1] != val
    assert len(split_indices(20000)[1]) == 512
    assert split_indices(1) == ([0], [])
    assert [len(part) for part in split_indices(2)] == [1, 1]
    assert split_indices(10, val_fraction=0.0) == (list(range(10)), [])
    with pytest.raises(GanprintError):
        split_indices(0)
