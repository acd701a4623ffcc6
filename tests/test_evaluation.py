"""The robustness grid, its report files, the secrecy test, the `ganprint attacks` / `evaluate`
commands, and immunized training beating plain training under noise."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganprint.attacks import ATTACKS, parse_attack_levels
from ganprint.cli import main
from ganprint.codec import CodecConfig, FingerprintCodec
from ganprint.errors import GanprintError
from ganprint.evaluation import (
    COLUMNS,
    Sample,
    SecrecyOptions,
    Subject,
    run_grid,
    secrecy_test,
    write_report,
)
from ganprint.evaluation.quality import psnr, ssim
from ganprint.evaluation.subjects import codec_subject
from ganprint.model_attacks import MODEL_ATTACKS, parse_model_attack_levels

LENGTH = 32


# --------------------------------------------------------------------------------------- helpers
class PixelSubject(Subject):
    """Bits written as dark/bright pixels along the top row, read back by thresholding: every number
    of the grid can be computed by hand."""

    kind = "test"
    fingerprint_length = LENGTH

    def __init__(self, n: int = 6, name: str = "pixels"):
        self.name = name
        g = torch.Generator().manual_seed(0)
        self.bits = torch.randint(0, 2, (n, LENGTH), generator=g).float()
        self.clean = torch.full((n, 3, LENGTH, LENGTH), 0.5)
        self.model = torch.nn.Linear(1, 1, bias=False)  # its weight is the bright-pixel offset
        torch.nn.init.constant_(self.model.weight, 0.25)

    def sample(self, model=None) -> Sample:
        offset = float((model or self.model).weight.detach())
        marked = self.clean.clone()
        marked[:, :, 0, :] = 0.5 + offset * (2 * self.bits[:, None, :] - 1)
        return Sample(torch.round(marked.clamp(0, 1) * 255) / 255, self.bits, self.clean)

    def decode_logits(self, images):
        return images[:, 0, 0, :] - 0.5

    def attack_target(self):
        return self.model


def tail(k: int, n: int) -> float:
    """P[Bin(n, 1/2) >= k], by direct summation."""
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2**n


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    FingerprintCodec(CodecConfig(resolution=32, fingerprint_length=16, channels=8, message_channels=2)).save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------ quality
def test_psnr_and_ssim_against_direct_computations():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 16, 16, generator=g)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    mse = ((a.numpy().astype(np.float64) - b.numpy()) ** 2).reshape(3, -1).mean(1)
    np.testing.assert_allclose(psnr(b, a).numpy(), 10 * np.log10(1 / mse), rtol=1e-5)
    assert psnr(a, a).tolist() == [100.0] * 3  # identical images: the documented cap
    torch.testing.assert_close(ssim(a, a), torch.ones(3))
    assert (ssim(b, a) < 0.99).all()


# ------------------------------------------------------------------------------------------ grid
def test_grid_numbers_against_hand_computation():
    subject = PixelSubject()
    levels = parse_attack_levels("hflip,brightness:1.9") + parse_model_attack_levels("weight_noise:0")
    result = run_grid([subject], levels, false_positive_rate=1e-3, progress=False)
    assert [r["label"] for r in result.rows] == ["none", "hflip:1", "brightness:1.9", "weight_noise:0"]
    threshold = min(k for k in range(LENGTH + 1) if tail(k, LENGTH) <= 1e-3)
    bits = subject.bits

    none = result.row("pixels", "none")
    assert none["bit_accuracy"] == 1.0 and none["detection_rate"] == 1.0 and none["threshold_bits"] == threshold
    assert none["p_value_median"] == pytest.approx(2.0**-LENGTH)
    marked = subject.sample().images
    mse = (marked - subject.clean).pow(2).mean((1, 2, 3))
    assert none["psnr_clean"] == pytest.approx((10 * torch.log10(1 / mse)).mean().item(), rel=1e-5)
    assert none["psnr_attack"] == 100.0
    # clean images read as all-zero bits: their accuracy is the share of zeros, detections none
    assert none["clean_bit_accuracy"] == pytest.approx((bits == 0).float().mean().item())
    assert none["clean_detection_rate"] == 0.0

    flip = result.row("pixels", "hflip:1")
    matches = (bits == bits.flip(-1)).sum(1)
    assert flip["bit_accuracy"] == pytest.approx(matches.float().mean().item() / LENGTH)
    assert flip["bit_accuracy_min"] == pytest.approx(matches.min().item() / LENGTH)
    assert flip["detection_rate"] == pytest.approx((matches >= threshold).float().mean().item())
    assert flip["p_value_median"] == pytest.approx(float(np.median([tail(int(k), LENGTH) for k in matches])))
    attacked = ATTACKS["hflip"](marked, 1)
    mse = (attacked - marked).pow(2).mean((1, 2, 3))
    assert flip["psnr_attack"] == pytest.approx((10 * torch.log10(1 / mse)).mean().item(), rel=1e-5)

    # x1.9 brightness: 0.25 -> 0.48 reads as 0, 0.75 -> 1: bits survive; clean
    # images turn white and read as all ones
    bright = result.row("pixels", "brightness:1.9")
    assert bright["bit_accuracy"] == 1.0
    assert bright["clean_bit_accuracy"] == pytest.approx((bits == 1).float().mean().item())

    same = result.row("pixels", "weight_noise:0")  # the identity model attack regenerates the same images
    assert {k: same[k] for k in ("bit_accuracy", "psnr_attack", "psnr_clean")} == {
        "bit_accuracy": 1.0, "psnr_attack": 100.0, "psnr_clean": none["psnr_clean"]}
    assert result.examples[("pixels", "hflip:1")].dtype == torch.uint8


def test_model_attacks_regenerate_and_skip_without_a_network():
    subject = PixelSubject()
    result = run_grid([subject], parse_model_attack_levels("quantize:2,finetune:3"), progress=False)
    q = result.row("pixels", "quantize:2")
    # 2 bits: one step each side of zero, step = |w|: the offset 0.25 survives exactly
    assert q["bit_accuracy"] == 1.0 and q["psnr_attack"] == 100.0
    assert result.row("pixels", "finetune:3") is None
    assert result.meta["skipped"] == [{"model": "pixels", "label": "finetune:3", "reason": "no clean-data loss for fine-tuning"}]
    assert list(result.meta["sample_seconds"]) == ["pixels"] and result.meta["sample_seconds"]["pixels"] >= 0


def test_codec_subject_on_a_tiny_codec(tiny_model):
    subject = codec_subject(str(tiny_model), "samples", count=8)
    result = run_grid([subject], parse_attack_levels("noise:0.1") + parse_model_attack_levels("finetune:2"),
                      progress=False)  # fmt: skip
    assert [r["label"] for r in result.rows] == ["none", "noise:0.1", "finetune:2"]
    none = result.row("tiny", "none")
    # the residual of a random ganprint codec has RMS residual_rms before clamping and 8-bit rounding
    assert none["psnr_clean"] == pytest.approx(-20 * math.log10(0.014), abs=1.5)
    assert none["images"] == 8 and 0 <= none["clean_bit_accuracy"] <= 1


# ----------------------------------------------------------------------------------------- report
def test_report_files_parse_and_hold_the_numbers(tmp_path):
    levels = parse_attack_levels("hflip,noise:0.1,noise:0.3")
    result = run_grid([PixelSubject(name="a"), PixelSubject(name="b")], levels, progress=False, examples=2)
    paths = write_report(result, tmp_path)
    with open(paths["results.csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 4 and list(rows[0]) == COLUMNS
    for csv_row, row in zip(rows, result.rows):
        assert csv_row["label"] == row["label"]
        assert float(csv_row["bit_accuracy"]) == pytest.approx(row["bit_accuracy"])
        assert float(csv_row["psnr_attack"]) == pytest.approx(row["psnr_attack"])
    data = json.loads(paths["results.json"].read_text())
    assert data["meta"]["false_positive_rate"] == 1e-6 and len(data["rows"]) == 8
    assert data["rows"][2]["bit_accuracy"] == pytest.approx(result.rows[2]["bit_accuracy"])
    for name in ("bit_accuracy.png", "detection_rate.png"):
        with Image.open(paths[name]) as im:
            assert im.format == "PNG" and im.width > 600
    page = paths["report.html"].read_text()
    assert "src='http" not in page and "<script" not in page  # self-contained
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(uris) == 2 + 2 * 4  # two plots, one example strip per model and level
    with Image.open(io.BytesIO(base64.b64decode(uris[-1]))) as strip:
        assert strip.height >= 64  # small images are enlarged
    assert f"{result.row('b', 'noise:0.3')['bit_accuracy']:.3f}" in page
    with pytest.raises(GanprintError, match="already exists.*--overwrite"):
        write_report(result, tmp_path)
    write_report(result, tmp_path, overwrite=True)


# ---------------------------------------------------------------------------------------- secrecy
def test_secrecy_is_chance_on_identical_images_and_high_on_a_visible_mark():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(40, 3, 16, 16, generator=g) * 0.5
    options = SecrecyOptions(steps=60, batch_size=16, channels=8)
    same = secrecy_test(clean, clean.clone(), options, progress=False)
    assert same.test_accuracy == 0.5  # identical inputs, identical outputs: one class for all
    assert same.test_images == 2 * round(40 * 0.3)
    checker = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2).float() * 0.2
    visible = secrecy_test(clean, clean + checker, options, progress=False)
    assert visible.test_accuracy > 0.9 and visible.p_value < 1e-4
    assert visible.p_value == pytest.approx(tail(visible.test_correct, visible.test_images))


# -------------------------------------------------------------------------------------------- CLI
def test_attacks_command_lists_every_attack_and_level(capsys):
    code, out, _ = run(capsys, "attacks")
    assert code == 0
    for a in [*ATTACKS.values(), *MODEL_ATTACKS.values()]:
        line = next(line for line in out.splitlines() if line.strip().startswith(a.name + " "))
        assert ", ".join(f"{v:g}" for v in a.levels) in line
    code, out, _ = run(capsys, "attacks", "--json")
    listed = json.loads(out)
    assert {e["name"]: e["levels"] for e in listed} == {a.name: list(a.levels) for a in [*ATTACKS.values(), *MODEL_ATTACKS.values()]}


@pytest.mark.parametrize("command", [["evaluate"], ["evaluate", "folder"], ["evaluate", "gan"], ["evaluate", "secrecy"],
                                     ["attacks"]])
def test_help_has_examples(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and re.search(r"^\s*Examples?:", out, re.MULTILINE) and re.search(r"^\s+ganprint ", out, re.MULTILINE)


def test_evaluate_codecs_writes_the_report_and_refuses_to_overwrite(capsys, tiny_model, tmp_path):
    out_dir = tmp_path / "rob"
    args = ["evaluate", "--codec", tiny_model, "--codec", tiny_model, "--images", 6, "--output_dir", out_dir, "-q",
            "--attacks", "jpeg:75,noise:0.1", "--attacks", "quantize:8", "--device", "cpu"]  # fmt: skip
    code, out, _ = run(capsys, *args)
    assert code == 0 and "report.html" in out
    data = json.loads((out_dir / "results.json").read_text())
    assert [(r["model"], r["label"]) for r in data["rows"]] == [
        (m, label) for m in ("tiny", "tiny-2") for label in ("none", "jpeg:75", "noise:0.1", "quantize:8")]
    a = [r["bit_accuracy"] for r in data["rows"][:4]]
    assert a == [r["bit_accuracy"] for r in data["rows"][4:]]  # same model, same seed: same numbers
    assert re.search(r"^noise:0\.1\s+[01]\.\d{3} / [01]\.\d\d", out, re.MULTILINE)
    before = (out_dir / "results.json").read_bytes()
    code, _, err = run(capsys, *args)
    assert code == 1 and "already exists" in err and (out_dir / "results.json").read_bytes() == before


@pytest.mark.parametrize(
    "args, code, words",
    [(["evaluate", "--output_dir", "x"], 2, "give --codec"),
     (["evaluate", "--codec", "TINY"], 2, "--output_dir"),
     (["evaluate", "--codec", "TINY", "--output_dir", "OUT", "--attacks", "jpeg:75,sharpen"], 1, "unknown attack 'sharpen'"),
     (["evaluate", "--codec", "TINY", "--output_dir", "OUT", "--attacks", "noise:2"], 1, "outside"),
     (["evaluate", "--codec", "nope-model", "--output_dir", "OUT"], 1, "nope-model"),
     (["evaluate", "--codec", "TINY", "secrecy", "--output_dir", "OUT"], 2, "after the sub-command"),
     (["evaluate", "secrecy", "--output_dir", "OUT"], 2, "either --codec")],
)  # fmt: skip
def test_evaluate_errors(capsys, tiny_model, tmp_path, args, code, words):
    args = [str(tiny_model) if a == "TINY" else str(tmp_path / "o") if a == "OUT" else a for a in args]
    got, _, err = run(capsys, *args)
    assert got == code and words in err, err
    assert not (tmp_path / "o").exists()


def test_evaluate_folder_of_embedded_images(capsys, tiny_model, tmp_path):
    code, _, err = run(capsys, "codec", "embed", "--model", tiny_model, "--data_dir", "samples", "--output_dir",
                       tmp_path / "marked", "-q")  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, "evaluate", "folder", tmp_path / "marked" / "fingerprinted_images", "--expected",
                         tmp_path / "marked", "--codec", tiny_model, "--output_dir", tmp_path / "rob", "--images", 10,
                         "--attacks", "blur:1", "-q")  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "rob" / "results.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["none", "blur:1"] and rows[0]["images"] == 10
    assert rows[0]["psnr_clean"] is None  # no clean counterparts in a folder
    # the unattacked row equals what `codec detect` reads from the same files
    detect = FingerprintCodec.from_pretrained(tiny_model)
    from ganprint.evaluation.subjects import folder_subject

    subject = folder_subject(str(tmp_path / "marked" / "fingerprinted_images"), str(tmp_path / "marked"), str(tiny_model), 10)
    assert rows[0]["bit_accuracy"] == pytest.approx(detect.detect(subject.images, subject.expected).bit_accuracy.mean().item())
    code, _, err = run(capsys, "evaluate", "folder", tmp_path / "marked" / "fingerprinted_images", "--expected",
                       tmp_path / "marked", "--codec", tiny_model, "--output_dir", tmp_path / "rob2", "--attacks", "prune:0.5")  # fmt: skip
    assert code == 1 and "need a model" in err


def test_evaluate_secrecy_command(capsys, tiny_model, tmp_path):
    code, out, err = run(capsys, "evaluate", "secrecy", "--codec", tiny_model, "--images", 24, "--steps", 5,
                         "--batch-size", 8, "--output_dir", tmp_path, "-q")  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / "secrecy.json").read_text())
    assert record["test_images"] == 2 * round(24 * 0.3) and 0 <= record["test_accuracy"] <= 1
    assert f"held-out accuracy {record['test_accuracy']:.3f}" in out


def test_evaluate_scalable_network(capsys, tmp_path):
    from ganprint.scalable.config import ScalableConfig
    from ganprint.scalable.network import ScalableNetwork

    torch.manual_seed(0)
    config = ScalableConfig(resolution=32, fingerprint_size=16, z_dim=8, w_dim=8, g_channels=(8, 8, 8, 8),
                            d_channels=(8, 8, 8, 8), mapping_layers=1)  # fmt: skip
    ScalableNetwork(config).save_pretrained(tmp_path / "net")
    code, _, err = run(capsys, "evaluate", "--scalable", tmp_path / "net", "--images", 4, "--attacks",
                       "noise:0.1,quantize:8", "--output_dir", tmp_path / "rob", "-q")  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "rob" / "results.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["none", "noise:0.1", "quantize:8"]
    assert rows[2]["psnr_attack"] < 100  # 8-bit weights change the generated images a little


def test_evaluate_gan_trained_on_fingerprinted_data(capsys, tmp_path):
    """The GAN subject: its samples read by the codec against the training set's one fingerprint,
    model attacks on its generator; two fingerprints in the training set or another resolution are
    one-line errors."""
    from ganprint.codec.importing import load_codec
    from ganprint.evaluation.subjects import gan_subject
    from ganprint.fingerprints import bits_to_str
    from ganprint.gan.network import GanConfig, GanNetwork

    torch.manual_seed(0)
    tiny = dict(z_dim=8, w_dim=8, g_channels=(8, 8, 8, 8), d_channels=(8, 8, 8, 8), mapping_layers=1)
    GanNetwork(GanConfig(resolution=32, **tiny)).save_pretrained(tmp_path / "gan")
    fp = (torch.rand(100, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    (tmp_path / "embedded_fingerprints.txt").write_text("".join(f"a{i}.png {bits_to_str(fp)}\n" for i in range(3)))
    code, _, err = run(capsys, "evaluate", "gan", tmp_path / "gan", "--fingerprint", tmp_path, "--images", 8,
                       "--attacks", "quantize:16,weight_noise:0.2", "--output_dir", tmp_path / "rob", "-q")  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "rob" / "results.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["none", "quantize:16", "weight_noise:0.2"]
    # the unattacked row is the codec's reading of the GAN's images against the file's fingerprint
    subject = gan_subject(str(tmp_path / "gan"), str(tmp_path), count=8)
    sample = subject.sample()
    bits = (load_codec("codec-32").decode_logits(sample.images) > 0).float()
    assert rows[0]["bit_accuracy"] == pytest.approx(float((bits == fp).float().mean()), abs=1e-6)
    assert torch.equal(sample.expected, fp.expand(8, -1)) and subject.attack_target() is subject.model
    assert rows[1]["psnr_attack"] > 40 > rows[2]["psnr_attack"]  # 16-bit weights barely change the images

    other = (1 - fp)
    (tmp_path / "embedded_fingerprints.txt").write_text(f"a.png {bits_to_str(fp)}\nb.png {bits_to_str(other)}\n")
    code, _, err = run(capsys, "evaluate", "gan", tmp_path / "gan", "--fingerprint", tmp_path,
                       "--output_dir", tmp_path / "rob2")  # fmt: skip
    assert code == 1 and "2 different fingerprints" in err and len(err.strip().splitlines()) == 1
    GanNetwork(GanConfig(resolution=16, **dict(tiny, g_channels=(8, 8, 8), d_channels=(8, 8, 8)))).save_pretrained(
        tmp_path / "gan16")
    code, _, err = run(capsys, "evaluate", "gan", tmp_path / "gan16", "--fingerprint", bits_to_str(fp),
                       "--output_dir", tmp_path / "rob3")  # fmt: skip
    assert code == 1 and "makes 16 px images" in err


# -------------------------------------------------------------------------------------- immunized
def test_immunized_codec_beats_plain_training_under_noise(tmp_path):
    """Two tiny codecs, same seed and data; one trained through noise (about 20 s in all)."""
    from ganprint.codec.train import CodecTrainOptions, train_codec
    from ganprint.data import open_source
    from ganprint.evaluation.subjects import CodecSubject, load_images

    photos = tmp_path / "photos"
    photos.mkdir()
    samples = open_source("samples")
    rng = np.random.default_rng(0)
    for i in range(48):
        x, y = rng.integers(0, 33, size=2)
        samples.image(i % 64).crop((x, y, x + 32, y + 32)).save(photos / f"{i:03d}.png")
    subjects = []
    for augment in (None, "noise=0.5"):
        run_dir = train_codec(CodecTrainOptions(
            data_dir=str(photos), output_dir=str(tmp_path / "runs"), fingerprint_length=16, channels=8,
            batch_size=16, steps=300, start_rms=0.05, residual_rms=0.05, eval_every=300, snapshot_every=10**6,
            progress=False, augment=augment, augment_ramp=100, device="cpu",
        ))  # fmt: skip
        codec = FingerprintCodec.from_pretrained(run_dir / "final")
        subjects.append(CodecSubject(codec, load_images("samples", 32, 64)[1], augment or "plain"))
    result = run_grid(subjects, parse_attack_levels("noise:0.2,noise:0.3"), progress=False)
    for label in ("noise:0.2", "noise:0.3"):
        plain, immunized = result.row("plain", label), result.row("noise=0.5", label)
        # bit errors: measured 0.027 -> 0.010 at std 0.2 and 0.065 -> 0.041 at std 0.3
        assert 1 - immunized["bit_accuracy"] < 0.75 * (1 - plain["bit_accuracy"]), (label, plain, immunized)
    assert result.row("noise=0.5", "none")["bit_accuracy"] > 0.97  # and still reads clean images


def test_a_calibrated_decoder_gets_its_calibrated_null(tiny_model, tmp_path):
    import shutil

    from ganprint.calibration import CALIBRATION_NAME, calibrate_decoder
    from ganprint.decoders import load_decoder

    model = tmp_path / "calibrated"
    shutil.copytree(tiny_model, model)
    calibration = calibrate_decoder(load_decoder(str(model), device="cpu"), "samples", progress=False, fingerprints=50)
    calibration.save(model / CALIBRATION_NAME)
    fair = run_grid([codec_subject(str(tiny_model), "samples", count=8)], [], progress=False)
    calibrated = run_grid([codec_subject(str(model), "samples", count=8)], [], progress=False)
    assert calibrated.meta["subjects"][0]["null"] == "calibrated on 64 clean images"
    assert fair.meta["subjects"][0]["null"] == "fair coins (binomial)"
    row, base = calibrated.rows[0], fair.rows[0]
    assert row["bit_accuracy"] == base["bit_accuracy"]  # same images and bits ...
    assert row["threshold_bits"] == calibration.calibrated_threshold  # ... judged by the calibrated null
    assert row["p_value_median"] >= base["p_value_median"]  # which is never more optimistic


# ------------------------------------------------------------------------------ native sizes
@pytest.fixture(scope="module")
def anysize_model(tmp_path_factory) -> Path:
    from ganprint.codec.anysize import AnySizeConfig
    from ganprint.codec.anysize_codec import AnySizeCodec

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "anysize"
    config = AnySizeConfig(fingerprint_length=16, working_resolution=64, tile=32, channels=8, message_channels=4)
    AnySizeCodec(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def native_photos(tmp_path_factory) -> Path:
    """Three built-in sample photos scaled to three different sizes and aspect ratios."""
    from ganprint.data import open_source

    folder = tmp_path_factory.mktemp("native")
    samples = open_source("samples")
    for i, size in enumerate([(160, 140), (200, 150), (150, 220)]):
        samples.image(i).resize(size, Image.BICUBIC).save(folder / f"{i}.png")
    return folder


def test_anysize_codec_is_evaluated_at_native_size(anysize_model, native_photos):
    from ganprint.codec.importing import load_codec
    from ganprint.data import open_source, pil_to_tensor
    from ganprint.evaluation.subjects import to_8bit

    subject = codec_subject(str(anysize_model), str(native_photos), count=8)
    assert subject.native
    levels = parse_attack_levels("jpeg:75,crop_area:0.5,rescale:0.5") + parse_model_attack_levels("weight_noise:0")
    result = run_grid([subject], levels, progress=False, examples=2)
    assert [r["label"] for r in result.rows] == ["none", "jpeg:75", "crop_area:0.5", "rescale:0.5", "weight_noise:0"]
    # by hand: each photo at its own size, its own fingerprint in order from the seed, rounded to 8 bits
    codec = load_codec(str(anysize_model))
    source = open_source(str(native_photos))
    g = torch.Generator().manual_seed(0)
    clean = [pil_to_tensor(source.image(i)) for i in range(3)]
    bits = [torch.randint(0, 2, (16,), generator=g).float() for _ in clean]
    marked = [to_8bit(codec.embed(x, b)) for x, b in zip(clean, bits)]
    assert [tuple(m.shape[-2:]) for m in marked] == [(140, 160), (150, 200), (220, 150)]  # never resized
    read = (codec.decode_logits(marked) > 0).float()
    none = result.row("anysize", "none")
    assert none["images"] == 3
    assert none["bit_accuracy"] == pytest.approx((read == torch.stack(bits)).float().mean().item())
    assert none["psnr_clean"] == pytest.approx(psnr(marked, clean).mean().item(), rel=1e-6)
    assert none["ssim_clean"] == pytest.approx(ssim(marked, clean).mean().item(), rel=1e-6)
    assert none["psnr_attack"] == 100.0 and 0 <= none["clean_bit_accuracy"] <= 1
    crop = result.row("anysize", "crop_area:0.5")
    cropped = [to_8bit(ATTACKS["crop_area"](m, 0.5)) for m in marked]
    assert crop["bit_accuracy"] == pytest.approx(
        ((codec.decode_logits(cropped) > 0).float() == torch.stack(bits)).float().mean().item())
    assert crop["psnr_attack"] is None and crop["ssim_attack"] is None  # other sizes: no PSNR against the image
    assert crop["psnr_clean"] == none["psnr_clean"]
    assert 20 < result.row("anysize", "jpeg:75")["psnr_attack"] < 60
    same = result.row("anysize", "weight_noise:0")  # the identity model attack embeds the same images again
    assert same["bit_accuracy"] == none["bit_accuracy"] and same["psnr_attack"] == 100.0
    thumbs = result.examples[("anysize", "rescale:0.5")]
    assert len(thumbs) == 2 and all(t.dtype == torch.uint8 and t.shape[-2] == 96 for t in thumbs)
    assert result.meta["subjects"][0]["native_size"] and result.meta["subjects"][0]["smallest"] == "160x140"


def test_native_report_and_size_limits(anysize_model, native_photos, tmp_path):
    subject = codec_subject(str(anysize_model), str(native_photos), count=2)
    result = run_grid([subject, PixelSubject()], parse_attack_levels("rescale:0.5,webp:80"), progress=False)
    # the fixed-size subject cannot read smaller images: skipped, and said so
    assert result.row("pixels", "rescale:0.5") is None and result.row("pixels", "webp:80") is not None
    assert result.meta["skipped"] == [{"model": "pixels", "label": "rescale:0.5",
                                       "reason": "changes the image size; a fixed-resolution decoder reads one size only"}]
    paths = write_report(result, tmp_path)
    with Image.open(paths["bit_accuracy.png"]) as im:
        assert im.width > 600
    assert "rescale:0.5" in paths["report.html"].read_text()
    rows = json.loads(paths["results.json"].read_text())["rows"]
    assert next(r for r in rows if r["label"] == "rescale:0.5")["psnr_attack"] is None
    # an attack that makes an image smaller than the codec reads: a clear error, not a made-up number
    with pytest.raises(GanprintError, match=r"rescale:0\.25 makes 0\.png: 40x35 is too small.*leave out that attack level"):
        run_grid([codec_subject(str(anysize_model), str(native_photos), count=2)], parse_attack_levels("rescale:0.25"),
                 progress=False)  # fmt: skip


def test_evaluate_anysize_codec_command(capsys, anysize_model, native_photos, tmp_path):
    code, _, err = run(capsys, "evaluate", "--codec", anysize_model, "--output_dir", tmp_path / "a")
    assert code == 1 and "any-size codec" in err and "--data" in err
    code, out, err = run(capsys, "evaluate", "--codec", anysize_model, "--data", native_photos, "--output_dir",
                         tmp_path / "b", "-q", "--attacks", "screenshot:0.75,crop_area_random:0.5")  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["none", "screenshot:0.75", "crop_area_random:0.5"]
    assert all(r["images"] == 3 for r in rows)
    assert re.search(r"^crop_area_random:0\.5\s+[01]\.\d{3} / [01]\.\d\d", out, re.MULTILINE)


def test_default_grids_of_the_evaluate_command():
    from ganprint.attacks import ANY_SIZE_ATTACKS, FIXED_SIZE_ATTACKS
    from ganprint.cli.evaluate import _attack_levels

    fixed = _attack_levels((), allow_model=True)
    assert [lv.label for lv in fixed if lv.kind == "image"] == [
        lv.label for lv in parse_attack_levels(None, default=FIXED_SIZE_ATTACKS)]
    assert [lv.label for lv in fixed if lv.kind == "model"] == [lv.label for lv in parse_model_attack_levels(
        "weight_noise,quantize,prune")]  # fmt: skip
    assert [lv.label for lv in _attack_levels((), allow_model=True, native=True)] == [
        lv.label for lv in parse_attack_levels(ANY_SIZE_ATTACKS)]
    assert len(_attack_levels(("all",), allow_model=False)) == len(parse_attack_levels("all"))


def test_evaluate_folder_of_native_size_images(anysize_model, native_photos, tmp_path):
    from ganprint.codec.importing import load_codec
    from ganprint.data import open_source
    from ganprint.evaluation.subjects import folder_subject
    from ganprint.fingerprints import bits_to_str

    codec = load_codec(str(anysize_model))
    source = open_source(str(native_photos))
    fp = (torch.rand(16, generator=torch.Generator().manual_seed(5)) > 0.5).float()
    marked_dir = tmp_path / "marked"
    marked_dir.mkdir()
    for i in range(3):
        codec.embed(source.image(i), fp).save(marked_dir / f"{i}.png")
    subject = folder_subject(str(marked_dir), bits_to_str(fp), str(anysize_model))
    assert subject.native
    result = run_grid([subject], parse_attack_levels("crop_area:0.5"), progress=False)
    none = result.row("marked", "none")
    assert none["images"] == 3 and none["psnr_clean"] is None and none["clean_bit_accuracy"] is None
    files = [Image.open(marked_dir / f"{i}.png") for i in range(3)]
    expected = codec.detect(files, expected=fp).bit_accuracy.mean().item()
    assert none["bit_accuracy"] == pytest.approx(expected)
