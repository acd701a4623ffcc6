"""`ganprint dataset`: crops and resizes, each source format (on small files written in the real
formats), the manifest, atomic outputs, reading back lazily, and every bad input."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganprint.cli import main
from ganprint.data import load_image, open_source
from ganprint.dataset_tool import (
    CELEBA_BOX,
    MANIFEST,
    center_crop_resize,
    celeba_crop,
    create_from_images,
    open_dataset,
    read_cifar_batch,
    read_manifest,
)
from ganprint.errors import BadImageError, GanprintError
from ganprint.restricted_pickle import load_data_pickle


# ------------------------------------------------------------------------------------- helpers
def run(capsys, *args) -> tuple[int, str, str]:
    try:
        returned = main([str(a) for a in args])
        code = 0 if returned is None else int(returned)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys, *args) -> tuple[str, str]:
    code, out, err = run(capsys, *args)
    assert code == 0, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err
    return out, err


def fails(capsys, *args) -> str:
    """The one `error: ...` line of a command that must exit 1."""
    code, out, err = run(capsys, *args)
    assert code == 1, f"expected exit 1, got {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert "set GANPRINT_DEBUG" not in errors[0], errors[0]
    return errors[0]


def rand_rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8)


def save(arr: np.ndarray, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kwargs)
    return path


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


def manifest_of(path: Path) -> dict:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read(MANIFEST))
    return json.loads((path / MANIFEST).read_text())


# ------------------------------------------------------------------------------------- crops and resizes
def test_center_crop_without_resize_keeps_the_exact_centre():
    arr = rand_rgb(20, 41, 0)  # 41 wide: (41 - 20) // 2 = 10 columns cut on the left
    out = center_crop_resize(Image.fromarray(arr), 20)
    assert np.array_equal(pixels(out), arr[:, 10:30])
    tall = rand_rgb(33, 16, 1)  # (33 - 16) // 2 = 8 rows cut at the top
    assert np.array_equal(pixels(center_crop_resize(Image.fromarray(tall), 16)), tall[8:24])


def test_center_crop_then_lanczos_resize():
    arr = rand_rgb(30, 50, 2)
    out = center_crop_resize(Image.fromarray(arr), 12)
    expected = Image.fromarray(np.ascontiguousarray(arr[:, 10:40])).resize((12, 12), Image.LANCZOS)
    assert out.size == (12, 12)
    assert np.array_equal(pixels(out), pixels(expected))
    # A flat image stays flat whatever the filter: no shift or ringing at the borders.
    flat = np.full((30, 50, 3), 77, np.uint8)
    assert (pixels(center_crop_resize(Image.fromarray(flat), 7)) == 77).all()


def _coordinate_image() -> np.ndarray:
    """178 x 218 RGB whose red is the row and green the column, so a crop shows where it was cut."""
    rows, cols = np.mgrid[0:218, 0:178]
    return np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def test_celeba_crop_is_rows_57_to_184_and_columns_25_to_152():
    out = pixels(celeba_crop(Image.fromarray(_coordinate_image())))
    assert out.shape == (128, 128, 3)
    assert out[0, 0, 0] == 57 and out[-1, 0, 0] == 184  # rows
    assert out[0, 0, 1] == 25 and out[0, -1, 1] == 152  # columns
    # centred at (x, y) = (89, 121): the middle of the box straddles that pixel
    assert (out[63, 63, 1], out[63, 63, 0]) == (88, 120) and (out[64, 64, 1], out[64, 64, 0]) == (89, 121)
    assert CELEBA_BOX == (25, 57, 153, 185)
    with pytest.raises(BadImageError, match="is 178x219, not the 178x218"):
        celeba_crop(Image.new("RGB", (178, 219)))


def test_celeba_crop_resized():
    img = Image.fromarray(rand_rgb(218, 178, 3))
    out = celeba_crop(img, 64)
    assert np.array_equal(pixels(out), pixels(img.crop(CELEBA_BOX).resize((64, 64), Image.LANCZOS)))


# ------------------------------------------------------------------------------------- create-celeba
def _celeba_folder(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    folder = tmp_path / "img_align_celeba_png"
    arrays = [rand_rgb(218, 178, 10 + i) for i in range(4)]
    for i, a in enumerate(arrays):
        save(a, folder / f"{i + 1:06d}.png")
    return folder, arrays


def test_create_celeba_first_n_cropped(tmp_path, capsys):
    folder, arrays = _celeba_folder(tmp_path)
    out = tmp_path / "celeba.zip"
    stdout, _ = ok(capsys, "dataset", "create-celeba", out, folder, "--num_images", 3, "-q")
    assert "wrote 3 images (128x128, 3 channel(s)) to" in stdout
    source = open_source(out)
    assert source.names == ["00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png"]
    for i in range(3):
        assert np.array_equal(pixels(source.image(i)), arrays[i][57:185, 25:153])
    m = manifest_of(out)
    assert [f["source"] for f in m["files"]] == ["000001.png", "000002.png", "000003.png"]
    assert (m["kind"], m["resolution"], m["channels"], m["count"], m["label_names"]) == ("celeba", 128, 3, 3, None)
    assert m["options"]["crop_box"] == [25, 57, 153, 185]


def test_create_celeba_skips_bad_images_and_strict_stops(tmp_path, capsys):
    folder, arrays = _celeba_folder(tmp_path)
    (folder / "000002.png").write_bytes(b"not a png")
    save(rand_rgb(200, 178, 5), folder / "000003.png")  # not aligned CelebA
    out = tmp_path / "celeba"
    stdout, err = ok(capsys, "dataset", "create-celeba", out, folder, "-q")
    assert "000002.png: not a recognised image file" in err
    assert "000003.png: is 178x200, not the 178x218 of aligned CelebA" in err
    assert "wrote 2 images" in stdout and "skipped 2 unreadable" in stdout
    m = manifest_of(out)
    assert [f["source"] for f in m["files"]] == ["000001.png", "000004.png"] and m["skipped"] == 2
    assert np.array_equal(pixels(load_image(out / "00000" / "img00000001.png")), arrays[3][57:185, 25:153])

    message = fails(capsys, "dataset", "create-celeba", tmp_path / "strict.zip", folder, "--strict", "-q")
    assert "000002.png: not a recognised image file" in message
    assert not (tmp_path / "strict.zip").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


# ------------------------------------------------------------------------------------- create-from-images
def _mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mixed"
    save(rand_rgb(24, 32, 0), folder / "a_rgb.png")
    rgba = np.dstack([rand_rgb(20, 20, 1), np.full((20, 20), 128, np.uint8)])
    save(rgba, folder / "b_rgba.png")
    save(np.random.RandomState(2).randint(0, 256, (40, 30), dtype=np.uint8), folder / "c_grey.png")
    Image.fromarray(np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 200).save(folder / "d_16bit.png")
    Image.fromarray(rand_rgb(18, 18, 3)).convert("P").save(folder / "e_palette.png")
    save(rand_rgb(64, 48, 4), folder / "sub" / "f.jpg", quality=95)
    return folder


def test_create_from_images_mixed_sizes_and_modes(tmp_path, capsys):
    folder = _mixed_folder(tmp_path)
    out = tmp_path / "mixed.zip"
    ok(capsys, "dataset", "create-from-images", out, folder, "--resolution", 16, "-q")
    source = open_source(out)
    assert len(source) == 6
    m = manifest_of(out)
    assert [f["source"] for f in m["files"]] == sorted(open_source(folder).names)
    for i, entry in enumerate(m["files"]):
        img = source.image(i)
        assert img.size == (16, 16) and img.mode == "RGB"
        expected = center_crop_resize(load_image(folder / entry["source"]), 16)
        assert np.array_equal(pixels(img), pixels(expected)), entry["source"]
    assert m["resolution"] == 16 and m["channels"] == 3 and m["options"]["shuffle"] is False


def test_create_from_images_without_resolution_needs_one_size(tmp_path, capsys):
    folder = _mixed_folder(tmp_path)
    message = fails(capsys, "dataset", "create-from-images", tmp_path / "out.zip", folder, "-q")
    assert "not square; pass --resolution" in message
    assert not (tmp_path / "out.zip").exists()
    same = tmp_path / "same"
    save(rand_rgb(8, 8, 0), same / "a.png")
    save(rand_rgb(9, 9, 1), same / "b.png")
    message = fails(capsys, "dataset", "create-from-images", tmp_path / "out", same, "-q")
    assert "b.png: is 9x9, but the first image was 8x8; pass --resolution" in message
    assert not (tmp_path / "out").exists()
    (same / "b.png").unlink()
    ok(capsys, "dataset", "create-from-images", tmp_path / "out", same, "-q")
    assert np.array_equal(pixels(load_image(tmp_path / "out/00000/img00000000.png")), rand_rgb(8, 8, 0))


def test_shuffle_seed_and_num_images(tmp_path, capsys):
    folder = tmp_path / "imgs"
    for i in range(7):
        save(rand_rgb(8, 8, i), folder / f"{i}.png")
    out = tmp_path / "shuffled.zip"
    ok(capsys, "dataset", "create_from_images", out, folder, "--shuffle", "--seed", 5, "--num_images", 4, "-q")
    expected = [f"{i}.png" for i in np.random.RandomState(5).permutation(7)[:4]]
    m = manifest_of(out)
    assert [f["source"] for f in m["files"]] == expected
    assert m["options"]["seed"] == 5 and m["count"] == 4
    first = int(expected[0][0])
    assert np.array_equal(pixels(open_source(out).image(0)), rand_rgb(8, 8, first))
    # The original spelling `--shuffle 0` keeps name order.
    ok(capsys, "dataset", "create_from_images", tmp_path / "plain.zip", folder, "--shuffle", 0, "-q")
    assert [f["source"] for f in manifest_of(tmp_path / "plain.zip")["files"]] == [f"{i}.png" for i in range(7)]


def test_too_few_images_for_num_images_is_a_note(tmp_path, capsys):
    folder = tmp_path / "imgs"
    save(rand_rgb(8, 8, 0), folder / "a.png")
    _, err = ok(capsys, "dataset", "create-from-images", tmp_path / "o.zip", folder, "--num-images", 5, "-q")
    assert "note: only 1 readable images in the source; --num-images asked for 5" in err


def test_empty_and_all_corrupt_sources(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "no images found" in fails(capsys, "dataset", "create-from-images", tmp_path / "o.zip", tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    message = fails(capsys, "dataset", "create-from-images", tmp_path / "o.zip", bad, "--resolution", 8, "-q")
    assert message == f"error: {bad}: none of its 2 images could be read"
    assert "no such file or directory" in fails(capsys, "dataset", "create-from-images", tmp_path / "o", tmp_path / "nope")
    assert not (tmp_path / "o.zip").exists()


# ------------------------------------------------------------------------------------- outputs
def test_existing_output_is_kept_without_overwrite_and_replaced_with_it(tmp_path, capsys):
    folder = tmp_path / "imgs"
    save(rand_rgb(8, 8, 0), folder / "a.png")
    out = tmp_path / "ds.zip"
    out.write_bytes(b"precious")
    message = fails(capsys, "dataset", "create-from-images", out, folder, "-q")
    assert "already exists" in message and "--overwrite" in message
    assert out.read_bytes() == b"precious"
    ok(capsys, "dataset", "create-from-images", out, folder, "-q", "--overwrite")
    assert read_manifest(out).count == 1

    # A folder dataset is replaced as a whole; a folder that is not a dataset is never deleted.
    ds = tmp_path / "ds"
    ok(capsys, "dataset", "create-from-images", ds, folder, "-q")
    save(rand_rgb(8, 8, 1), folder / "b.png")
    ok(capsys, "dataset", "create-from-images", ds, folder, "-q", "--overwrite")
    assert read_manifest(ds).count == 2 and len(open_source(ds)) == 2
    other = tmp_path / "mine"
    (other / "keep.txt").parent.mkdir()
    (other / "keep.txt").write_text("x")
    assert "not a ganprint dataset" in fails(capsys, "dataset", "create-from-images", other, folder, "-q", "--overwrite")
    assert (other / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_zip_output_is_reproducible_and_stored(tmp_path):
    folder = tmp_path / "imgs"
    for i in range(3):
        save(rand_rgb(8, 8, i), folder / f"{i}.png")
    a = create_from_images(tmp_path / "a.zip", folder, progress=False)
    b = create_from_images(tmp_path / "b.zip", folder, progress=False)
    assert (a.count, a.resolution, a.channels) == (3, 8, 3)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        types = {i.filename: i.compress_type for i in zf.infolist()}
    assert types[MANIFEST] == zipfile.ZIP_DEFLATED
    assert {t for n, t in types.items() if n.endswith(".png")} == {zipfile.ZIP_STORED}


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    for i in range(3):
        save(rand_rgb(8, 8, i), folder / f"{i}.png")
    import ganprint.dataset_tool as dt

    calls = {"n": 0}
    real = dt._png_bytes

    def flaky(img):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(img)

    monkeypatch.setattr(dt, "_png_bytes", flaky)
    for out in (tmp_path / "x.zip", tmp_path / "x"):
        calls["n"] = 0
        with pytest.raises(KeyboardInterrupt):
            create_from_images(out, folder, progress=False)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]


# ------------------------------------------------------------------------------------- reading back
def test_open_dataset_checks_resolution_and_manifest(tmp_path, capsys):
    folder = tmp_path / "imgs"
    for i in range(3):
        save(rand_rgb(12, 12, i), folder / f"{i}.png")
    for out in (tmp_path / "d.zip", tmp_path / "d"):
        create_from_images(out, folder, resolution=8, progress=False)
        source, manifest = open_dataset(out, resolution=8)
        assert source.names == manifest.files and len(source) == 3 and manifest.labels is None
        assert manifest.source_names == ["0.png", "1.png", "2.png"]
        with pytest.raises(GanprintError, match=r"images are 8x8, but 32x32 are needed; make it again .*--resolution 32"):
            open_dataset(out, resolution=32)
    stdout, _ = ok(capsys, "dataset", "info", tmp_path / "d.zip")
    assert json.loads(stdout)["count"] == 3
    assert "are needed" in fails(capsys, "dataset", "info", tmp_path / "d", "--resolution", 16)

    (tmp_path / "d" / "00000" / "img00000001.png").unlink()
    mismatch = r"do not match dataset.json \(2 images, 3 listed; missing 00000/img00000001.png\)"
    with pytest.raises(GanprintError, match=mismatch):
        open_dataset(tmp_path / "d")
    with pytest.raises(GanprintError, match="not a ganprint dataset"):
        open_dataset(folder)
    (tmp_path / "d" / MANIFEST).write_text("{not json")
    with pytest.raises(GanprintError, match="not valid JSON"):
        open_dataset(tmp_path / "d")
    (tmp_path / "d" / MANIFEST).write_text(json.dumps({"format": "ganprint-dataset", "format_version": 1}))
    with pytest.raises(GanprintError, match="malformed manifest"):
        open_dataset(tmp_path / "d")
    (tmp_path / "d" / MANIFEST).write_text(json.dumps({"format": "ganprint-dataset", "format_version": 99}))
    with pytest.raises(GanprintError, match="upgrade ganprint"):
        open_dataset(tmp_path / "d")


# ------------------------------------------------------------------------------------- CIFAR-10
def _cifar_batch(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.randint(0, 10, n)]


def _write_cifar(folder: Path, n: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    """CIFAR-10's python layout, pickled at protocol 2 as bytes-keyed dicts (what the real files hold)."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_batch(n, k)
        record = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                  b"filenames": [f"img{i}.png".encode() for i in range(n)]}  # fmt: skip
        (folder / name).write_bytes(pickle.dumps(record, protocol=2))
        batches[name] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


def _py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """The byte layout Python 2's cPickle wrote for CIFAR-10 (protocol 2, str keys, BINSTRING data)."""

    def s(text: bytes) -> bytes:  # SHORT_BINSTRING or BINSTRING
        return (b"U" + bytes([len(text)]) if len(text) < 256 else b"T" + struct.pack("<i", len(text))) + text

    out = b"\x80\x02}q\x01(" + s(b"data") + b"cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85"
    out += s(b"b") + b"\x87Rq\x04(K\x01" + b"M" + struct.pack("<H", data.shape[0]) + b"M" + struct.pack("<H", 3072)
    out += b"\x86cnumpy\ndtype\nq\x05" + s(b"u1") + b"K\x00K\x01\x87Rq\x06(K\x03" + s(b"|")
    out += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbI00\n" + s(data.tobytes()) + b"tb"
    out += s(b"labels") + b"]q\x07(" + b"".join(b"K" + bytes([v]) for v in labels) + b"eu."
    return out


def test_cifar_batch_python2_layout_reads_without_unpickling():
    data, labels = _cifar_batch(4, 0)
    raw = _py2_cifar_pickle(data, labels)
    images, got = read_cifar_batch(raw, "data_batch_1")
    assert got == labels
    assert images.shape == (4, 32, 32, 3)
    # pixel (y, x) of channel c is data[c * 1024 + y * 32 + x]
    assert images[2, 5, 7, 1] == data[2, 1024 + 5 * 32 + 7]
    assert np.array_equal(images[1, :, :, 2].ravel(), data[1, 2048:])
    # the same bytes through the real (trusting) unpickler agree: the layout above is faithful
    trusted = pickle.loads(raw, encoding="bytes")
    assert np.array_equal(trusted[b"data"], data) and trusted[b"labels"] == labels


def test_create_cifar10_folder_and_tar(tmp_path, capsys):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py")
    out = tmp_path / "cifar.zip"
    stdout, _ = ok(capsys, "dataset", "create-cifar10", out, tmp_path, "-q")  # the parent folder works too
    assert "wrote 15 images (32x32, 3 channel(s), with labels)" in stdout
    source, manifest = open_dataset(out, resolution=32)
    expected_labels = [v for i in range(1, 6) for v in batches[f"data_batch_{i}"][1]]
    assert manifest.labels == expected_labels
    assert manifest.label_names[:2] == ["airplane", "automobile"]
    data = batches["data_batch_2"][0]
    assert np.array_equal(pixels(source.image(4)), data[1].reshape(3, 32, 32).transpose(1, 2, 0))
    assert manifest.source_names[4] == "data_batch_2:00001"

    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    ok(capsys, "dataset", "create-cifar10", tmp_path / "test", tgz, "--split", "test", "-q")
    source, manifest = open_dataset(tmp_path / "test")
    assert manifest.labels == batches["test_batch"][1] and manifest.count == 3
    assert np.array_equal(pixels(source.image(0)), batches["test_batch"][0][0].reshape(3, 32, 32).transpose(1, 2, 0))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_cifar_malicious_pickle_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_cifar(tmp_path / "c")
    data, labels = _cifar_batch(3, 0)
    evil = {b"data": data, b"labels": labels, b"payload": _Evil()}
    (tmp_path / "c" / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    message = fails(capsys, "dataset", "create-cifar10", tmp_path / "o.zip", tmp_path / "c", "-q")
    assert "data_batch_3: refusing to load this pickle: it contains the global posix.system" in message
    assert not (tmp_path / "pwned-by-pickle").exists()
    assert not (tmp_path / "o.zip").exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_pickle_reads_plain_data_and_arrays(protocol):
    value = {
        "a": [1, -2, 3.5, None, True, False, 2**70],
        b"k": ("t", b"\x00\xff", ()),
        "u8": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "f32": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3),
        "be": np.arange(5, dtype=">i4"),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    }
    value["shared"] = value["a"]  # the memo
    got = load_data_pickle(pickle.dumps(value, protocol=protocol), "x")
    assert got["a"] == value["a"] and got[b"k"] == value[b"k"] and got["shared"] == value["a"]
    for key in ("u8", "f32", "be", "fortran"):
        assert got[key].dtype == value[key].dtype and np.array_equal(got[key], value[key]), key


class _Plain:
    pass


@pytest.mark.parametrize(
    "payload, reason",
    [
        (_Evil(), "the global posix.system"),
        (_Plain(), "the global test_dataset_tool._Plain"),
        (np.array([object()], dtype=object), "a non-numeric dtype"),
        ({1, 2}, "the opcode EMPTY_SET"),
    ],
)
def test_restricted_pickle_refuses_everything_else(payload, reason):
    raw = pickle.dumps({"x": payload}, protocol=4)
    with pytest.raises(GanprintError, match="refusing to load this pickle") as e:
        load_data_pickle(raw, "f")
    assert reason in str(e.value)


def test_restricted_pickle_corrupt_and_wrong_content(tmp_path, capsys):
    raw = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    with pytest.raises(GanprintError, match="f: (truncated pickle|corrupt or unsupported pickle)"):
        load_data_pickle(raw[:-40], "f")
    with pytest.raises(GanprintError, match="not a CIFAR-10 batch \\('labels' is not a list of 2"):
        read_cifar_batch(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2), "b")
    with pytest.raises(GanprintError, match="not a CIFAR-10 batch \\('data' is not an N x 3072 uint8"):
        read_cifar_batch(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, protocol=2), "b")
    with pytest.raises(GanprintError, match="labels outside 0..9"):
        read_cifar_batch(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, protocol=2), "b")
    _write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_4").unlink()
    assert "no data_batch_4 (expected CIFAR-10's python batches" in fails(
        capsys, "dataset", "create-cifar10", tmp_path / "o", tmp_path / "c"
    )
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b junk")
    assert "not a CIFAR-10 folder or readable .tar.gz" in fails(
        capsys, "dataset", "create-cifar10", tmp_path / "o", tmp_path / "junk.tar.gz"
    )


# ------------------------------------------------------------------------------------- LSUN (LMDB)
def _encoded(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {"quality": 95}))
    return buf.getvalue()


def test_create_lsun_round_trip(tmp_path, capsys):
    lmdb = pytest.importorskip("lmdb")
    db = tmp_path / "bedroom_train_lmdb"
    arrays = {b"0a": rand_rgb(30, 40, 0), b"1b": rand_rgb(36, 24, 1), b"2c": rand_rgb(20, 20, 2)}
    env = lmdb.open(str(db), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"2c", _encoded(arrays[b"2c"], "JPEG"))
        txn.put(b"0a", _encoded(arrays[b"0a"], "WEBP"))
        txn.put(b"1b", _encoded(arrays[b"1b"], "WEBP"))
        txn.put(b"1x", b"corrupt bytes")
    env.close()
    out = tmp_path / "lsun.zip"
    stdout, err = ok(capsys, "dataset", "create-lsun", out, db, "--resolution", 16, "-q")
    assert f"{db}:1x: not a recognised image file" in err
    assert "wrote 3 images (16x16" in stdout and "skipped 1" in stdout
    source, manifest = open_dataset(out, 16)
    assert manifest.source_names == ["0a", "1b", "2c"]  # key order
    for i, key in enumerate([b"0a", b"1b"]):  # lossless WebP: exact pixels
        assert np.array_equal(pixels(source.image(i)), pixels(center_crop_resize(Image.fromarray(arrays[key]), 16)))
    ok(capsys, "dataset", "create_lsun", tmp_path / "one", db, "--max_images", 1, "-q")
    assert read_manifest(tmp_path / "one").count == 1

    empty = tmp_path / "empty_lmdb"
    lmdb.open(str(empty), map_size=1 << 20).close()
    assert "the LMDB database is empty" in fails(capsys, "dataset", "create-lsun", tmp_path / "e.zip", empty)
    (tmp_path / "notdb").mkdir()
    (tmp_path / "notdb" / "data.mdb").write_bytes(b"\0" * 100)
    assert "not a readable LMDB database" in fails(capsys, "dataset", "create-lsun", tmp_path / "e.zip", tmp_path / "notdb")


def test_create_lsun_without_lmdb_says_how_to_install(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_lmdb(name, *args, **kwargs):
        if name == "lmdb":
            raise ImportError("No module named 'lmdb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lmdb)
    message = fails(capsys, "dataset", "create-lsun", tmp_path / "o.zip", tmp_path)
    assert message == "error: reading LSUN needs the lmdb package: pip install lmdb"


# ------------------------------------------------------------------------------------- MNIST / Fashion-MNIST
def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: list[int] | None, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = images.shape
    opener = gzip.open if gz else open
    ext = ".gz" if gz else ""
    with opener(folder / f"{prefix}-images-idx3-ubyte{ext}", "wb") as f:
        f.write(b"\x00\x00\x08\x03" + struct.pack(">III", n, rows, cols) + images.tobytes())
    if labels is not None:
        with opener(folder / f"{prefix}-labels-idx1-ubyte{ext}", "wb") as f:
            f.write(b"\x00\x00\x08\x01" + struct.pack(">I", len(labels)) + bytes(labels))


def test_create_mnist_greyscale_with_labels(tmp_path, capsys):
    rng = np.random.RandomState(0)
    train = rng.randint(0, 256, (5, 28, 28), dtype=np.uint8)
    test = rng.randint(0, 256, (2, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "mnist", "train", train, [3, 1, 4, 1, 5])
    _write_idx(tmp_path / "mnist", "t10k", test, [9, 2], gz=False)
    out = tmp_path / "mnist.zip"
    stdout, _ = ok(capsys, "dataset", "create-mnist", out, tmp_path / "mnist", "-q")
    assert "wrote 5 images (28x28, 1 channel(s), with labels)" in stdout
    source, manifest = open_dataset(out, 28)
    assert manifest.channels == 1 and manifest.labels == [3, 1, 4, 1, 5] and manifest.label_names[3] == "3"
    with zipfile.ZipFile(out) as zf:
        first = Image.open(io.BytesIO(zf.read(manifest.files[0])))
        assert first.mode == "L" and np.array_equal(np.asarray(first), train[0])
    assert np.array_equal(pixels(source.image(4))[..., 0], train[4])  # readers get RGB

    ok(capsys, "dataset", "create-mnist", tmp_path / "t", tmp_path / "mnist", "--split", "test", "--resolution", 32, "-q")
    source, manifest = open_dataset(tmp_path / "t", 32)
    assert manifest.labels == [9, 2]
    expected = center_crop_resize(Image.fromarray(test[1]), 32)
    assert np.array_equal(pixels(source.image(1))[..., 0], pixels(expected))

    # An images file without labels beside it: a dataset without labels, and a note.
    (tmp_path / "solo").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").rename(tmp_path / "solo" / "train-images-idx3-ubyte.gz")
    solo = tmp_path / "solo" / "train-images-idx3-ubyte.gz"
    _, err = ok(capsys, "dataset", "create-mnist", tmp_path / "nolabels", solo, "-q")
    assert "no labels file found" in err and read_manifest(tmp_path / "nolabels").labels is None


def test_idx_bad_inputs(tmp_path, capsys):
    images = np.zeros((3, 4, 4), np.uint8)
    _write_idx(tmp_path / "m", "train", images, [1, 2])  # 2 labels for 3 images
    assert "holds 2 labels for 3 images" in fails(capsys, "dataset", "create-mnist", tmp_path / "o", tmp_path / "m")
    assert "no t10k-images-idx3-ubyte[.gz]" in fails(
        capsys, "dataset", "create-mnist", tmp_path / "o", tmp_path / "m", "--split", "test"
    )
    (tmp_path / "m" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 12))
    assert "idx header gives 0 images" in fails(capsys, "dataset", "create-mnist", tmp_path / "o", tmp_path / "m")
    save(rand_rgb(4, 4, 0), tmp_path / "pics" / "a.png")
    assert "no train-images-idx3-ubyte" in fails(capsys, "dataset", "create-mnist", tmp_path / "o", tmp_path / "pics")
    assert not (tmp_path / "o").exists()


def test_create_fashion_mnist_from_the_package_location(tmp_path, capsys, monkeypatch):
    rng = np.random.RandomState(1)
    imgs = rng.randint(0, 256, (4, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "fm", "t10k", imgs, [7, 0, 9, 1])
    monkeypatch.setenv("GANPRINT_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    monkeypatch.chdir(tmp_path)
    ok(capsys, "dataset", "create-fashion-mnist", "fm_test.zip", "--split", "test", "-q")
    source, manifest = open_dataset(tmp_path / "fm_test.zip")
    assert manifest.source == "fashion-mnist:test" and manifest.labels == [7, 0, 9, 1]
    assert manifest.label_names[7] == "Sneaker"
    assert np.array_equal(pixels(source.image(2))[..., 0], imgs[2])
    assert "install it with: sudo apt-get install dataset-fashion-mnist" in fails(
        capsys, "dataset", "create-fashion-mnist", "train.zip"
    )


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_first_labels(tmp_path, monkeypatch):
    monkeypatch.delenv("GANPRINT_FASHION_MNIST_DIR", raising=False)
    from ganprint.dataset_tool import create_idx

    summary = create_idx(tmp_path / "fm.zip", "fashion-mnist", kind="fashion-mnist", num_images=6, progress=False)
    assert summary.count == 6
    # The first training labels of Fashion-MNIST: ankle boot, T-shirt, T-shirt, dress, T-shirt, pullover.
    assert read_manifest(tmp_path / "fm.zip").labels == [9, 0, 0, 3, 0, 2]


# ------------------------------------------------------------------------------------- help
@pytest.mark.parametrize(
    "command",
    ["create-celeba", "create-from-images", "create-lsun", "create-cifar10", "create-mnist", "create-fashion-mnist",
     "info", "create_celeba"],
)  # fmt: skip
def test_help_shows_examples_and_original_aliases(capsys, command):
    out, _ = ok(capsys, "dataset", command, "--help")
    assert out.startswith(f"Usage: ganprint dataset {command}")
    assert "Examples:" in out or "Example:" in out
    if command.startswith("create"):
        assert "--num_images" in out and "--overwrite" in out and "--strict" in out


def test_outputs_get_ordinary_permissions(tmp_path):
    save(rand_rgb(8, 8, 0), tmp_path / "imgs" / "a.png")
    mask = os.umask(0o022)
    try:
        create_from_images(tmp_path / "d.zip", tmp_path / "imgs", progress=False)
        create_from_images(tmp_path / "d", tmp_path / "imgs", progress=False)
    finally:
        os.umask(mask)
    assert (tmp_path / "d.zip").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
