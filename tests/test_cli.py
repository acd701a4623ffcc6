"""The `ganprint` command line, run in-process through `ganprint.cli.main` (the real error path).

Tiny random models and a folder of small synthetic images keep every test fast; random weights are
enough to test file formats, names, determinism and error handling.
"""

from __future__ import annotations

import csv
import json
import math
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganprint.cli import main
from ganprint.codec import CodecConfig, FingerprintCodec
from ganprint.codec.original import OriginalDecoder, OriginalEncoder

LENGTH = 16
LINE = re.compile(r"^(\S+\.png) ([01]{16})$")


# ------------------------------------------------------------------------------------- helpers
def run(capsys, *args) -> tuple[int, str, str]:
    """Run `ganprint *args` in-process; (exit code, stdout, stderr)."""
    argv = [str(a) for a in args]
    try:
        returned = main(argv)
        code = 0 if returned is None else int(returned)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys, *args) -> str:
    code, out, err = run(capsys, *args)
    assert code == 0, f"ganprint {' '.join(map(str, args))} exited {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err
    return out


def fails(capsys, *args, code: int = 1) -> str:
    """Run a command that must fail with one `error: ...` line on stderr and no traceback; the line."""
    got, out, err = run(capsys, *args)
    assert got == code, f"expected exit {code}, got {got}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert err.rstrip().splitlines()[-1] == errors[0]  # the error is the last thing said
    assert "set GANPRINT_DEBUG" not in errors[0], f"an unexpected exception leaked: {errors[0]}"
    return errors[0]


def read_lines(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text
    lines = text.splitlines()
    parsed = []
    for line in lines:
        m = LINE.match(line)
        assert m, f"not '<name>.png <16 bits>': {line!r}"
        parsed.append((m.group(1), m.group(2)))
    names = [n for n, _ in parsed]
    assert names == sorted(names) and len(set(names)) == len(names)
    return parsed


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def write_images(folder: Path, count: int, seed: int = 0, size=(32, 32), prefix: str = "img") -> list[Path]:
    """Random noise and gradients, some of another size (preprocessing resizes and crops them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        w, h = size if i % 3 else (size[0] + 8, size[1] + 16)
        if i % 2:
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        else:
            gx, gy = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
            arr = np.stack([gx, gy, np.full_like(gx, rng.integers(0, 256))], -1).astype(np.uint8)
        path = folder / f"{prefix}{i:02d}.png"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """24 small PNGs."""
    root = tmp_path_factory.mktemp("images")
    write_images(root, 24)
    return root


@pytest.fixture(scope="module")
def nested(tmp_path_factory) -> Path:
    """Images in nested folders, and `a.jpg` beside `a.png` (their output names would collide)."""
    root = tmp_path_factory.mktemp("nested")
    write_images(root / "sub", 2, seed=1, prefix="x")
    write_images(root / "sub" / "deeper", 1, seed=2, prefix="y")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(root / "a.jpg", quality=95)
    return root


def _save_tiny(folder: Path, resolution: int = 32, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = CodecConfig(resolution=resolution, fingerprint_length=LENGTH, channels=8, message_channels=2)
    FingerprintCodec(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny random ganprint codec folder: config.json + model.safetensors."""
    return _save_tiny(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """Random original ICCV networks saved as the original tools do: x_encoder.pth, x_decoder.pth."""
    root = tmp_path_factory.mktemp("original")
    torch.manual_seed(1)
    torch.save(OriginalEncoder(32, LENGTH).state_dict(), root / "x_encoder.pth")
    torch.save(OriginalDecoder(32, LENGTH).state_dict(), root / "x_decoder.pth")
    return root


def embed(capsys, model, data, out, *extra) -> str:
    return ok(capsys, "codec", "embed", "--model", model, "--data_dir", data, "--output_dir", out, "-q", *extra)


# ---------------------------------------------------------------------------------------- help
COMMANDS = [[], ["codec"], ["codec", "train"], ["codec", "embed"], ["codec", "detect"], ["codec", "import"],
            ["codec", "info"], ["demo"]]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ganprint")
def test_help_exits_zero_and_shows_an_example(capsys, command):
    out = ok(capsys, *command, "--help")
    assert out.startswith(f"Usage: ganprint {' '.join(command)}".rstrip())
    assert re.search(r"^\s*Examples?:", out, re.MULTILINE), out
    assert re.search(r"^\s+ganprint ", out, re.MULTILINE)  # the example is a command line


@pytest.mark.parametrize(
    "command, flags",
    [
        (["codec", "train"], ["--data_dir", "--output_dir", "--image_resolution", "--batch_size",
                              "--fingerprint_length", "--use_celeba_preprocessing"]),
        (["codec", "embed"], ["--data_dir", "--output_dir", "--image_resolution", "--batch_size",
                              "--identical_fingerprints", "--encoder_path", "--use_celeba_preprocessing"]),
        (["codec", "detect"], ["--data_dir", "--output_dir", "--image_resolution", "--batch_size",
                               "--decoder_path", "--use_celeba_preprocessing"]),
        (["codec", "import"], ["--encoder_path", "--decoder_path", "--image_resolution"]),
    ],
)  # fmt: skip
def test_original_underscore_flags_are_listed(capsys, command, flags):
    out = ok(capsys, *command, "--help")
    for flag in flags:
        assert re.search(rf"{flag}\b", out), f"{flag} missing from {' '.join(command)} --help"


def test_usage_errors_exit_2(capsys, images, tmp_path):
    code, out, err = run(capsys, "codec", "embed", "--data_dir", images)  # no --output_dir
    assert code == 2 and "output" in err.lower() and "Traceback" not in out + err
    code, out, err = run(capsys, "codec", "train", "--output_dir", tmp_path)  # neither --data_dir nor --resume
    assert code == 2 and "--data_dir" in err and "Traceback" not in out + err
    code, out, err = run(capsys, "codec", "embed", "--no-such-flag")
    assert code == 2 and "--no-such-flag" in err
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------- train
TRAIN = ["--channels", 8, "--fingerprint_length", LENGTH, "--batch_size", 8, "--eval-every", 3,
         "--snapshot-every", 3, "-q", "--device", "cpu"]  # fmt: skip


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def test_train_writes_numbered_runs_and_resumes(capsys, images, tmp_path):
    runs = tmp_path / "runs"
    out = ok(capsys, "codec", "train", "--data_dir", images, "--output_dir", runs, "--steps", 6,
             "--image_resolution", 32, *TRAIN)  # fmt: skip
    (run0,) = runs.iterdir()
    assert re.fullmatch(r"00000-codec-ganprint-32px-16b", run0.name)
    assert str(run0) in out and str(run0 / "final") in out

    options = json.loads((run0 / "options.json").read_text())
    assert options["steps"] == 6 and options["fingerprint_length"] == LENGTH and options["channels"] == 8
    assert options["data_dir"] == str(images)
    stats = [json.loads(line) for line in (run0 / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [3, 6]
    for s in stats:
        assert 0.0 <= s["val/bit_accuracy"] <= 1.0
    for folder in (run0 / "final", run0 / "snapshot-000003"):
        config = json.loads((folder / "config.json").read_text())
        assert config["kind"] == "ganprint.codec" and config["fingerprint_length"] == LENGTH
        assert (folder / "model.safetensors").stat().st_size > 0
    assert not (run0 / "snapshot-000006").exists()  # the last step is the final model
    assert (run0 / "checkpoint.pt").is_file()
    grids = sorted(p.name for p in run0.glob("grid-*.png"))
    assert "grid-000003.png" in grids
    Image.open(run0 / grids[0]).verify()
    assert not tmp_files(run0)

    # the trained folder is a model the other commands take
    info = json.loads(ok(capsys, "codec", "info", run0 / "final"))
    assert info["fingerprint_length"] == LENGTH and info["parts"] == ["encoder", "decoder"]

    ok(capsys, "codec", "train", "--data_dir", images, "--output_dir", runs, "--steps", 1, *TRAIN)
    assert sorted(p.name[:6] for p in runs.iterdir()) == ["00000-", "00001-"]

    final_before = (run0 / "final" / "model.safetensors").read_bytes()
    ok(capsys, "codec", "train", "--resume", run0, "--steps", 9, "-q")
    assert json.loads((run0 / "options.json").read_text())["steps"] == 9
    steps = _steps(run0)
    assert steps == [3, 6, 9] and len(steps) == len(set(steps))
    assert (run0 / "final" / "model.safetensors").read_bytes() != final_before  # trained on from step 6
    assert torch.load(run0 / "checkpoint.pt", weights_only=True)["step"] == 9
    assert sorted(p.name[:6] for p in runs.iterdir()) == ["00000-", "00001-"]  # no new run folder

    # resuming a finished run without more steps adds nothing and duplicates nothing
    ok(capsys, "codec", "train", "--resume", run0, "-q")
    assert _steps(run0) == [3, 6, 9]


def test_resume_of_a_folder_that_is_not_a_run(capsys, tmp_path):
    line = fails(capsys, "codec", "train", "--resume", tmp_path, "-q")
    assert str(tmp_path) in line and "run" in line
    (tmp_path / "options.json").write_text("{not json")
    line = fails(capsys, "codec", "train", "--resume", tmp_path, "-q")
    assert "options.json" in line
    code, out, err = run(capsys, "codec", "train", "--resume", tmp_path / "missing", "-q")
    assert code == 2 and "missing" in err and "Traceback" not in out + err


def test_resume_without_checkpoint(capsys, images, tmp_path):
    ok(capsys, "codec", "train", "--data_dir", images, "--output_dir", tmp_path, "--steps", 1, *TRAIN)
    (run0,) = tmp_path.iterdir()
    (run0 / "checkpoint.pt").write_bytes(b"\x00garbage")
    line = fails(capsys, "codec", "train", "--resume", run0, "--steps", 2, "-q")
    assert "checkpoint.pt" in line
    (run0 / "checkpoint.pt").unlink()
    line = fails(capsys, "codec", "train", "--resume", run0, "--steps", 2, "-q")
    assert "checkpoint.pt" in line


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--use_celeba_preprocessing", "--image_resolution", 64], ["128"]),
        (["--device", "cuda"], ["CUDA", "cpu"]),
        (["--image_resolution", 48], ["48"]),
    ],
)
def test_train_refuses_bad_options_before_making_a_run(capsys, images, tmp_path, extra, words):
    line = fails(capsys, "codec", "train", "--data_dir", images, "--output_dir", tmp_path, "--steps", 1,
                 *TRAIN, *extra)  # fmt: skip
    for word in words:
        assert word in line
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------- embed/detect
def test_embed_and_detect_files(capsys, model, nested, tmp_path):
    out = tmp_path / "marked"
    said = embed(capsys, model, nested, out, "--seed", 3)
    assert "fingerprinted 5 images" in said
    lines = read_lines(out / "embedded_fingerprints.txt")
    names = [n for n, _ in lines]
    assert names == ["a-jpg.png", "a-png.png", "sub__deeper__y00.png", "sub__x00.png", "sub__x01.png"]
    assert sorted(p.name for p in (out / "fingerprinted_images").iterdir()) == names
    for name in names:
        with Image.open(out / "fingerprinted_images" / name) as im:
            assert im.format == "PNG" and im.size == (32, 32) and im.mode == "RGB"
    assert len({bits for _, bits in lines}) > 1  # one random fingerprint per image by default
    assert sorted(p.name for p in out.iterdir()) == ["embedded_fingerprints.txt", "fingerprinted_images"]

    det = tmp_path / "det"
    said = ok(capsys, "codec", "detect", "--decoder_path", model, "--data_dir", out / "fingerprinted_images",
              "--output_dir", det, "-q")  # fmt: skip
    assert "read 5 images" in said and "mean bit accuracy" not in said
    detected = read_lines(det / "detected_fingerprints.txt")
    assert [n for n, _ in detected] == names
    assert not (det / "detection_report.csv").exists()  # no expectation, no report

    det2 = tmp_path / "det2"
    said = ok(capsys, "codec", "detect", "--decoder_path", model, "--data_dir", out / "fingerprinted_images",
              "--output_dir", det2, "--expected", out / "embedded_fingerprints.txt", "-q")  # fmt: skip
    embedded, read = dict(lines), dict(detected)
    want = np.mean([np.mean([a == b for a, b in zip(embedded[n], read[n])]) for n in names])
    m = re.search(r"mean bit accuracy (\d\.\d{4})", said)
    assert m and float(m.group(1)) == pytest.approx(want, abs=1e-4)
    assert (det2 / "detected_fingerprints.txt").read_bytes() == (det / "detected_fingerprints.txt").read_bytes()
    with open(det2 / "detection_report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == names
    for r in rows:
        assert float(r["bit_accuracy"]) == pytest.approx(np.mean([a == b for a, b in zip(embedded[r["name"]],
                                                                                         read[r["name"]])]))  # fmt: skip
        assert 0.0 < float(r["p_value"]) <= 1.0 and r["detected"] in ("True", "False")
        assert r["detected_bits"] == read[r["name"]]

    # --json: one parseable object with the same numbers
    code, text, err = run(capsys, "codec", "detect", "--decoder_path", model, "--data_dir",
                          out / "fingerprinted_images", "--output_dir", tmp_path / "det3", "--expected",
                          out, "--json", "-q")  # fmt: skip
    assert code == 0, err
    record = json.loads(text)
    assert record["images"] == 5 and record["mean_bit_accuracy"] == pytest.approx(want)
    assert record["output_dir"] == str(tmp_path / "det3") and "per_image" not in record
    assert 0 <= record["detected"] <= 5 and 0.0 < record["pooled_p_value"] <= 1.0
    # the consensus test: positions where more than half of the images read their embedded bit
    length = len(embedded[names[0]])
    agreeing = [sum(embedded[n][i] == read[n][i] for n in names) for i in range(length)]
    k = sum(2 * a > len(names) for a in agreeing)
    assert record["consensus_matches"] == k
    assert record["consensus_p_value"] == pytest.approx(sum(math.comb(length, i) for i in range(k, length + 1)) / 2**length)
    assert "consensus p-value" in said


def test_identical_and_given_fingerprints(capsys, model, images, tmp_path):
    said = embed(capsys, model, images, tmp_path / "same", "--identical_fingerprints", "--seed", 5)
    lines = read_lines(tmp_path / "same" / "embedded_fingerprints.txt")
    assert len(lines) == 24 and len({bits for _, bits in lines}) == 1
    assert f"fingerprint: {lines[0][1]}" in said

    embed(capsys, model, images, tmp_path / "hex", "--fingerprint", "0xa5c3")
    lines = read_lines(tmp_path / "hex" / "embedded_fingerprints.txt")
    assert {bits for _, bits in lines} == {"1010010111000011"}

    embed(capsys, model, images, tmp_path / "bits", "--fingerprint", "0011101011110000")
    assert {bits for _, bits in read_lines(tmp_path / "bits" / "embedded_fingerprints.txt")} == {"0011101011110000"}

    # the given fingerprint is what a detector compares against
    said = ok(capsys, "codec", "detect", "--decoder_path", model, "--data_dir", tmp_path / "hex" / "fingerprinted_images",
              "--output_dir", tmp_path / "det", "--expected", "a5c3", "-q")  # fmt: skip
    detected = read_lines(tmp_path / "det" / "detected_fingerprints.txt")
    want = np.mean([[a == b for a, b in zip(bits, "1010010111000011")] for _, bits in detected])
    assert float(re.search(r"mean bit accuracy (\S+);", said).group(1)) == pytest.approx(want, abs=1e-4)


def test_same_seed_same_files_other_seed_other_fingerprints(capsys, model, images, tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        embed(capsys, model, images, tmp_path / name, "--seed", seed, "--batch_size", 5)
    a, b, c = (snapshot(tmp_path / n) for n in "abc")
    assert a == b and len(a) == 25
    assert a["embedded_fingerprints.txt"] != c["embedded_fingerprints.txt"]
    assert a.keys() == c.keys()


def test_second_embed_without_overwrite_keeps_the_first(capsys, model, images, tmp_path):
    out = tmp_path / "marked"
    embed(capsys, model, images, out, "--seed", 1)
    before = snapshot(out)
    line = fails(capsys, "codec", "embed", "--model", model, "--data_dir", images, "--output_dir", out,
                 "--seed", 2, "-q")  # fmt: skip
    assert "embedded_fingerprints.txt" in line and "--overwrite" in line
    assert snapshot(out) == before
    # with --overwrite it is replaced
    embed(capsys, model, images, out, "--seed", 2, "--overwrite")
    assert snapshot(out)["embedded_fingerprints.txt"] != before["embedded_fingerprints.txt"]
    assert not tmp_files(out)

    det = tmp_path / "det"
    ok(capsys, "codec", "detect", "--model", model, "--data_dir", out / "fingerprinted_images", "--output_dir", det, "-q")
    first = snapshot(det)
    line = fails(capsys, "codec", "detect", "--model", model, "--data_dir", images, "--output_dir", det, "-q")
    assert "detected_fingerprints.txt" in line
    assert snapshot(det) == first


def test_overwrite_with_fewer_images_leaves_no_stale_images(capsys, model, images, nested, tmp_path):
    out = tmp_path / "marked"
    embed(capsys, model, images, out)
    assert len(list((out / "fingerprinted_images").iterdir())) == 24
    embed(capsys, model, nested, out, "--overwrite")
    names = [n for n, _ in read_lines(out / "embedded_fingerprints.txt")]
    assert len(names) == 5
    assert sorted(p.name for p in (out / "fingerprinted_images").iterdir()) == names


def test_failed_overwrite_keeps_the_earlier_output(capsys, model, images, tmp_path):
    out = tmp_path / "marked"
    embed(capsys, model, images, out, "--seed", 1)
    before = snapshot(out)
    broken = tmp_path / "broken"
    write_images(broken, 6)
    (broken / "img04.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # fails after the first batch
    line = fails(capsys, "codec", "embed", "--model", model, "--data_dir", broken, "--output_dir", out,
                 "--overwrite", "--strict", "--batch_size", 2, "-q")  # fmt: skip
    assert "img04.png" in line
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["embedded_fingerprints.txt", "fingerprinted_images"]


# ---------------------------------------------------------------------------------------- import
def test_import_info_and_detect_by_path(capsys, original, images, tmp_path):
    folder = tmp_path / "imported"
    said = ok(capsys, "codec", "import", "--encoder_path", original / "x_encoder.pth", "--decoder_path",
              original / "x_decoder.pth", "--output", folder)  # fmt: skip
    assert "32x32" in said and "16 bits" in said
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]

    info = json.loads(ok(capsys, "codec", "info", folder))
    assert info["kind"] == "ganprint.codec" and info["arch"] == "original"
    assert info["resolution"] == 32 and info["fingerprint_length"] == LENGTH
    assert info["parts"] == ["encoder", "decoder"]
    n_params = sum(p.numel() for p in OriginalEncoder(32, LENGTH).parameters()) + sum(
        p.numel() for p in OriginalDecoder(32, LENGTH).parameters()
    )
    assert info["parameters"] == n_params

    # import refuses to replace a model unless asked
    before = snapshot(folder)
    line = fails(capsys, "codec", "import", "--decoder_path", original / "x_decoder.pth", "--output", folder)
    assert str(folder) in line and "--overwrite" in line
    assert snapshot(folder) == before

    marked = tmp_path / "marked"
    embed(capsys, folder, images, marked, "--identical_fingerprints")
    data = marked / "fingerprinted_images"
    ok(capsys, "codec", "detect", "--decoder_path", folder, "--data_dir", data, "--output_dir", tmp_path / "d1", "-q")
    ok(capsys, "codec", "detect", "--decoder_path", original / "x_decoder.pth", "--data_dir", data,
       "--output_dir", tmp_path / "d2", "-q")  # fmt: skip
    d1 = (tmp_path / "d1" / "detected_fingerprints.txt").read_bytes()
    assert d1 == (tmp_path / "d2" / "detected_fingerprints.txt").read_bytes()
    assert len(read_lines(tmp_path / "d1" / "detected_fingerprints.txt")) == 24

    # the decoder alone imports into a detect-only model
    ok(capsys, "codec", "import", "--decoder_path", original / "x_decoder.pth", "--output", tmp_path / "dec")
    assert json.loads(ok(capsys, "codec", "info", tmp_path / "dec"))["parts"] == ["decoder"]
    line = fails(capsys, "codec", "embed", "--model", tmp_path / "dec", "--data_dir", images, "--output_dir",
                 tmp_path / "nope", "-q")  # fmt: skip
    assert "encoder" in line

    # the encoder by path needs the resolution (its weights do not say), and then embeds like the import
    line = fails(capsys, "codec", "embed", "--encoder_path", original / "x_encoder.pth", "--data_dir", images,
                 "--output_dir", tmp_path / "e0", "-q")  # fmt: skip
    assert "x_encoder.pth" in line and "--image_resolution" in line
    embed(capsys, original / "x_encoder.pth", images, tmp_path / "e1", "--identical_fingerprints",
          "--image_resolution", 32)  # fmt: skip
    assert snapshot(tmp_path / "e1") == snapshot(marked)


# ------------------------------------------------------------------------------------ bad input
def test_missing_and_empty_data(capsys, model, tmp_path):
    missing = tmp_path / "no-such-folder"
    line = fails(capsys, "codec", "embed", "--model", model, "--data_dir", missing, "--output_dir", tmp_path / "o")
    assert str(missing) in line
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    line = fails(capsys, "codec", "detect", "--model", model, "--data_dir", empty, "--output_dir", tmp_path / "o")
    assert str(empty) in line and "no images" in line
    line = fails(capsys, "codec", "train", "--data_dir", empty, "--output_dir", tmp_path / "runs", *TRAIN)
    assert str(empty) in line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.txt"))


def _corrupt_files(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.png").write_bytes(b"")
    buf = folder / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf)
    data = buf.read_bytes()
    buf.unlink()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "text.jpg").write_text("this is not a JPEG\n")
    return ["zero.png", "truncated.png", "text.jpg"]


def test_folder_of_only_corrupt_files_is_an_error(capsys, model, tmp_path):
    bad = tmp_path / "bad"
    names = _corrupt_files(bad)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "codec", "embed", "--model", model, "--data_dir", bad, "--output_dir", out, "-q")
    assert code == 1 and "Traceback" not in stdout + err
    assert err.rstrip().splitlines()[-1].startswith("error: ") and str(bad) in err.rstrip().splitlines()[-1]
    for name in names:  # each bad file was named in a warning
        assert name in err
    assert not (out / "embedded_fingerprints.txt").exists()
    assert not tmp_files(out)
    line = fails(capsys, "codec", "detect", "--model", model, "--data_dir", bad, "--output_dir", tmp_path / "d", "-q")
    assert str(bad) in line
    assert not (tmp_path / "d" / "detected_fingerprints.txt").exists()


def test_one_corrupt_image_is_skipped_unless_strict(capsys, model, tmp_path):
    data = tmp_path / "data"
    write_images(data, 6)
    (data / "img03.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = run(capsys, "codec", "embed", "--model", model, "--data_dir", data, "--output_dir",
                         tmp_path / "lenient", "-q", "--batch_size", 4)  # fmt: skip
    assert code == 0 and "Traceback" not in out + err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "img03.png" in warnings[0]
    names = [n for n, _ in read_lines(tmp_path / "lenient" / "embedded_fingerprints.txt")]
    assert names == [f"img{i:02d}.png" for i in (0, 1, 2, 4, 5)]
    assert "fingerprinted 5 images" in out

    code, out, err = run(capsys, "codec", "detect", "--model", model, "--data_dir", data, "--output_dir",
                         tmp_path / "det", "-q")  # fmt: skip
    assert code == 0 and "img03.png" in err
    assert len(read_lines(tmp_path / "det" / "detected_fingerprints.txt")) == 5

    strict = tmp_path / "strict"
    line = fails(capsys, "codec", "embed", "--model", model, "--data_dir", data, "--output_dir", strict,
                 "-q", "--batch_size", 2, "--strict")  # fmt: skip
    assert "img03.png" in line
    assert not (strict / "embedded_fingerprints.txt").exists()
    assert not tmp_files(strict)  # outputs are atomic: no temporary files left behind
    line = fails(capsys, "codec", "detect", "--model", model, "--data_dir", data, "--output_dir",
                 tmp_path / "sdet", "-q", "--strict")  # fmt: skip
    assert "img03.png" in line
    assert not (tmp_path / "sdet" / "detected_fingerprints.txt").exists() and not tmp_files(tmp_path / "sdet")


def _model_copy(model: Path, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(model, folder)
    return folder


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_weights_file(capsys, model, images, tmp_path, damage):
    folder = _model_copy(model, tmp_path, "broken")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"garbage": b"\xde\xad\xbe\xef" * 64, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    for command in (["codec", "info", folder],
                    ["codec", "detect", "--model", folder, "--data_dir", images, "--output_dir", tmp_path / "o", "-q"],
                    ["codec", "embed", "--model", folder, "--data_dir", images, "--output_dir", tmp_path / "o", "-q"]):  # fmt: skip
        line = fails(capsys, *command)
        assert "model.safetensors" in line
    assert not (tmp_path / "o").exists()


def test_config_of_another_kind_or_bad_config(capsys, model, tmp_path):
    folder = _model_copy(model, tmp_path, "other")
    (folder / "config.json").write_text(json.dumps({"kind": "something-else"}))
    line = fails(capsys, "codec", "info", folder)
    assert "config.json" in line and "something-else" in line
    (folder / "config.json").write_text("{broken")
    line = fails(capsys, "codec", "info", folder)
    assert "config.json" in line
    (folder / "config.json").unlink()
    line = fails(capsys, "codec", "info", folder)
    assert str(folder) in line and "config.json" in line
    line = fails(capsys, "codec", "info", tmp_path / "nowhere")
    assert "nowhere" in line


def test_weights_of_another_fingerprint_length(capsys, model, tmp_path):
    folder = _model_copy(model, tmp_path, "mismatch")
    config = json.loads((folder / "config.json").read_text())
    config["fingerprint_length"] = 32
    (folder / "config.json").write_text(json.dumps(config))
    line = fails(capsys, "codec", "info", folder)
    assert "model.safetensors" in line and "shape" in line


def test_image_resolution_other_than_the_models(capsys, model, original, images, tmp_path):
    line = fails(capsys, "codec", "embed", "--model", model, "--data_dir", images, "--output_dir", tmp_path / "o",
                 "--image_resolution", 64, "-q")  # fmt: skip
    assert "32" in line and "64" in line
    line = fails(capsys, "codec", "detect", "--decoder_path", original / "x_decoder.pth", "--data_dir", images,
                 "--output_dir", tmp_path / "o", "--image_resolution", 64, "-q")  # fmt: skip
    assert "x_decoder.pth" in line and "32" in line and "64" in line
    line = fails(capsys, "codec", "import", "--encoder_path", original / "x_encoder.pth", "--decoder_path",
                 original / "x_decoder.pth", "--image_resolution", 64, "--output", tmp_path / "imp")  # fmt: skip
    assert "64" in line
    assert not (tmp_path / "o").exists() and not (tmp_path / "imp" / "model.safetensors").exists()


def test_celeba_preprocessing_needs_128(capsys, tmp_path, images):
    model64 = _save_tiny(tmp_path / "m64", resolution=64)
    for command in ("embed", "detect"):
        line = fails(capsys, "codec", command, "--model", model64, "--data_dir", images, "--output_dir",
                     tmp_path / command, "--use_celeba_preprocessing", "--image_resolution", 64, "-q")  # fmt: skip
        assert "128" in line and "celeba" in line.lower()
        # the model's own resolution counts too, when --image_resolution is not given
        line = fails(capsys, "codec", command, "--model", model64, "--data_dir", images, "--output_dir",
                     tmp_path / command, "--use_celeba_preprocessing", "-q")  # fmt: skip
        assert "128" in line and "celeba" in line.lower()
        assert not (tmp_path / command).exists()


class _Evil:
    """Unpickling this creates `marker` (what a malicious checkpoint could do with any code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickle_posing_as_a_model_is_not_executed(capsys, images, tmp_path, writer):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil_decoder.pth"
    payload = {"dense.2.weight": _Evil(marker)}
    if writer == "torch.save":
        torch.save(payload, evil)
    else:
        with open(evil, "wb") as f:
            pickle.dump(payload, f)
    for command in (["codec", "detect", "--decoder_path", evil, "--data_dir", images, "--output_dir", tmp_path / "o", "-q"],
                    ["codec", "import", "--decoder_path", evil, "--output", tmp_path / "imp"],
                    ["codec", "info", evil]):  # fmt: skip
        line = fails(capsys, *command)
        assert "evil_decoder.pth" in line
        assert not marker.exists()
    assert not (tmp_path / "imp" / "model.safetensors").exists()
    # the premise: an ordinary unpickler would have run the payload
    if writer == "torch.save":
        torch.load(evil, weights_only=False)
    else:
        with open(evil, "rb") as f:
            pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("value", ["01010", "0x12345", "abc", "1" * 15, "xyz!", "0x", "0xfg12"])
def test_bad_fingerprint_values(capsys, model, images, tmp_path, value):
    line = fails(capsys, "codec", "embed", "--model", model, "--data_dir", images, "--output_dir", tmp_path / "o",
                 "--fingerprint", value, "-q")  # fmt: skip
    assert value in line or str(len(value)) in line
    assert not (tmp_path / "o").exists()  # refused before anything was written
    line = fails(capsys, "codec", "detect", "--model", model, "--data_dir", images, "--output_dir", tmp_path / "d",
                 "--expected", value, "-q")  # fmt: skip
    assert value in line or str(len(value)) in line
    assert not (tmp_path / "d" / "detected_fingerprints.txt").exists()


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "tpu"])
def test_unavailable_device(capsys, model, images, tmp_path, device):
    for command in ("embed", "detect"):
        line = fails(capsys, "codec", command, "--model", model, "--data_dir", images, "--output_dir",
                     tmp_path / command, "--device", device, "-q")  # fmt: skip
        assert ("CUDA" in line) if device.startswith("cuda") else (device in line)
        assert not (tmp_path / command).exists()


@pytest.mark.parametrize(
    "content",
    ["img00.png 0101\n", "img00.png\n", "img00.png 01010101010101012\n", "name,bits\nimg00.png,0101010101010101\n",
     "img00.png 0101010101010101\nimg01.png 01\n", "", "\xff\xfe"],
)  # fmt: skip
def test_malformed_expected_file(capsys, model, images, tmp_path, content):
    expected = tmp_path / "expected.txt"
    expected.write_bytes(content.encode("latin-1"))
    line = fails(capsys, "codec", "detect", "--model", model, "--data_dir", images, "--output_dir", tmp_path / "d",
                 "--expected", expected, "-q")  # fmt: skip
    assert "expected.txt" in line
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_expected_file_with_other_names_warns(capsys, model, images, tmp_path):
    expected = tmp_path / "expected.txt"
    expected.write_text("someone-else.png 0101010101010101\n")
    code, out, err = run(capsys, "codec", "detect", "--model", model, "--data_dir", images, "--output_dir",
                         tmp_path / "d", "--expected", expected, "-q")  # fmt: skip
    assert code == 0 and "Traceback" not in out + err
    assert "warning: 24 images have no expected fingerprint" in err and "warning" not in out
    assert "mean bit accuracy" not in out
    assert len(read_lines(tmp_path / "d" / "detected_fingerprints.txt")) == 24
    # with --json, stdout stays one parseable object even when there are warnings
    code, out, err = run(capsys, "codec", "detect", "--model", model, "--data_dir", images, "--output_dir",
                         tmp_path / "j", "--expected", expected, "--json", "-q")  # fmt: skip
    assert code == 0 and "warning" in err
    record = json.loads(out)
    assert record["images"] == 24 and record["mean_bit_accuracy"] is None


def test_expected_path_that_does_not_exist(capsys, model, images, tmp_path):
    typo = tmp_path / "embeded_fingerprints.txt"
    line = fails(capsys, "codec", "detect", "--model", model, "--data_dir", images, "--output_dir", tmp_path / "d",
                 "--expected", typo, "-q")  # fmt: skip
    assert str(typo) in line
    assert not (tmp_path / "d").exists()
