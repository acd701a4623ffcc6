"""Calibration on clean images: per-bit bias, correlation, conformal confidence threshold, the stored
calibration.json, and its use by `codec detect` and `attribute`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganprint.decoders
from ganprint.calibration import Calibration, _conformal_threshold, calibrate_logits, load_calibration
from ganprint.codec import CodecConfig, FingerprintCodec
from ganprint.decoders import Decoder
from ganprint.detection import NullModel
from ganprint.errors import GanprintError
from ganprint.registry import Registry


def logits_from_bits(bits: np.ndarray, scale: float = 3.0) -> torch.Tensor:
    return torch.tensor((bits.astype(np.float32) * 2 - 1) * scale)


# ------------------------------------------------------------------------------- the statistics
def test_fair_decoder_needs_no_correction():
    rng = np.random.default_rng(0)
    cal = calibrate_logits(logits_from_bits(rng.integers(0, 2, (4000, 100))), fingerprints=200)
    assert cal.images == 4000 and cal.length == 100
    assert max(abs(q - 0.5) for q in cal.one_rate) < 0.04
    assert cal.binomial_threshold == 74 and cal.calibrated_threshold in (74, 75, 76)
    assert cal.optimism < 3 and cal.warnings == []
    assert cal.correlation_eigenvalue < 1.5 * cal.correlation_eigenvalue_shuffled
    e = cal.empirical
    assert e["comparisons"] == 4000 * 200 and e["above_calibrated_threshold"] <= e["above_binomial_threshold"] <= 3


def test_biased_bits_are_reported_and_the_calibrated_p_value_stays_conservative():
    rng = np.random.default_rng(1)
    n, length = 20000, 100
    lean = np.where(np.arange(length) < 50, 0.8, 0.5)  # half the bits read 1 on 80% of clean images
    clean = (rng.random((n, length)) < lean).astype(np.uint8)
    cal = calibrate_logits(logits_from_bits(clean[:5000]), fingerprints=100)
    assert cal.optimism > 10 and any("biased" in w for w in cal.warnings)
    assert cal.calibrated_threshold > cal.binomial_threshold
    # the expected fingerprint that agrees with the bias is the worst case for false positives
    matches = (clean[:, :50] == 1).sum(axis=1) + (clean[:, 50:] == rng.integers(0, 2, 50)).sum(axis=1)
    fair, calibrated = NullModel.fair(length), cal.null_model()
    for k in (60, 66, 70):
        empirical = float(np.mean(matches >= k))
        assert calibrated.p_value(k) >= 0.8 * empirical  # conservative (up to sampling noise)
        assert fair.p_value(k) < 0.5 * empirical  # the fair-coin p-value is optimistic here


def test_correlated_bits_warn():
    rng = np.random.default_rng(2)
    shared = rng.integers(0, 2, (3000, 1))
    bits = np.hstack([np.repeat(shared, 20, axis=1), rng.integers(0, 2, (3000, 80))])
    cal = calibrate_logits(logits_from_bits(bits), fingerprints=50)
    assert cal.correlation_eigenvalue > 15 and any("correlated" in w for w in cal.warnings)


@pytest.mark.parametrize("n, rate", [(99, 0.01), (999, 0.01), (1000, 1e-6), (10, 0.5), (5, 0.99)])
def test_conformal_threshold(n, rate):
    scores = np.random.default_rng(n).random(n)
    threshold, achieved = _conformal_threshold(scores, rate)
    above = int(np.sum(scores >= threshold))  # clean scores at or above the threshold
    assert achieved == pytest.approx(above / (n + 1))  # (m + 1)/(n + 1): m+1 scores >= the (m+1)-th largest
    if 1 / (n + 1) <= rate:
        assert achieved <= rate + 1e-12 and (above + 1) / (n + 1) > rate or above == n
    else:
        assert threshold == scores.max() and achieved == pytest.approx(1 / (n + 1))


def test_too_few_images_warn_and_the_unknown_rate_says_so():
    rng = np.random.default_rng(3)
    cal = calibrate_logits(logits_from_bits(rng.integers(0, 2, (50, 64))), fingerprints=10)
    assert any("only 50 clean images" in w for w in cal.warnings)
    assert cal.unknown_false_positive_rate == pytest.approx(1 / 51)


# ---------------------------------------------------------------------------------- the file
def test_save_load_round_trip_and_bad_files(tmp_path):
    rng = np.random.default_rng(4)
    cal = calibrate_logits(logits_from_bits(rng.integers(0, 2, (100, 16))), fingerprints=10, method="codec",
                           decoder="d", weights_sha256="ab" * 32, resolution=32, source="x")  # fmt: skip
    path = cal.save(tmp_path / "calibration.json")
    back = Calibration.load(path)
    assert back == cal
    assert back.null_model().p_value(12) == pytest.approx(cal.null_model().p_value(12))
    with pytest.raises(GanprintError, match="already exists; pass --overwrite"):
        cal.save(path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(GanprintError, match="bad.json: not valid JSON"):
        Calibration.load(tmp_path / "bad.json")
    data = cal.to_dict()
    data["one_rate"] = data["one_rate"][:-1]
    (tmp_path / "short.json").write_text(json.dumps(data))
    with pytest.raises(GanprintError, match="one_rate must hold 16 numbers"):
        Calibration.load(tmp_path / "short.json")
    (tmp_path / "other.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(GanprintError, match="not a ganprint calibration"):
        Calibration.load(tmp_path / "other.json")


# --------------------------------------------------------------------------- with real decoders
@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "tiny"
    FingerprintCodec(CodecConfig(resolution=32, fingerprint_length=16, channels=8, message_channels=2)).save_pretrained(folder)
    images = tmp_path / "clean"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(images / f"{i:02d}.png")
    return folder, images


def test_calibrate_cli_writes_beside_the_model_and_detect_uses_it(run_cli, tiny_model, tmp_path):
    folder, images = tiny_model
    code, out, err = run_cli("calibrate", "--model", folder, "--data_dir", images, "-q", "--fingerprints", 20)
    assert code == 0, err
    assert f"wrote {folder / 'calibration.json'}" in out and "warning: only 12 clean images" in err
    cal = Calibration.load(folder / "calibration.json")
    assert cal.images == 12 and cal.length == 16 and cal.method == "codec" and len(cal.weights_sha256) == 64
    code, out, err = run_cli("calibrate", "--model", folder, "--data_dir", images, "-q")
    assert code == 1 and "calibration.json already exists; pass --overwrite" in err

    code, out, err = run_cli("codec", "detect", "--model", folder, "--data_dir", images, "--output_dir",
                         tmp_path / "det", "--expected", "0" * 16, "--json", "-q", "--fpr", 0.01)  # fmt: skip
    assert code == 0, err
    record = json.loads(out)
    assert record["null"].startswith("calibrated on 12 clean images")
    assert record["match_threshold"] == cal.null_model().threshold(0.01)

    # the calibration belongs to these weights: changed weights are refused, not silently used
    weights = folder / "model.safetensors"
    other = FingerprintCodec(CodecConfig(resolution=32, fingerprint_length=16, channels=8, message_channels=2))
    other.save_pretrained(folder)
    code, out, err = run_cli("codec", "detect", "--model", folder, "--data_dir", images, "--output_dir",
                         tmp_path / "det2", "-q")  # fmt: skip
    assert code == 1 and "made for other weights" in err and weights.exists()


def test_attribute_uses_the_calibration_for_unknown_fingerprints(run_cli, tmp_path, monkeypatch):
    length = 64
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    decoder = Decoder("stand-in", "codec", 64, length, lambda x: (x[:, 0, 0, :length] - 0.5) * 40, model_dir=model_dir)
    monkeypatch.setattr(ganprint.decoders, "load_decoder", lambda *a, **k: decoder)
    rng = np.random.default_rng(5)

    def write(path: Path, bits=None):
        pixels = rng.uniform(0.47, 0.53, size=(64, 64, 3))
        if bits is not None:
            pixels[0, :length, 0] = bits
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)

    for i in range(30):
        write(tmp_path / "calib" / f"c{i}.png")
        write(tmp_path / "test" / f"clean{i}.png")
    write(tmp_path / "test" / "unregistered.png", rng.integers(0, 2, length))
    db = tmp_path / "fp.db"
    with Registry(db, create=True) as reg:
        (entry,) = reg.issue("registered", length, seed=0)
    write(tmp_path / "test" / "registered.png", entry.bits)

    code, out, err = run_cli("attribute", "--registry", db, "--jsonl", tmp_path / "test", "-q")
    verdicts = {json.loads(line)["name"].rsplit("/", 1)[-1]: json.loads(line)["verdict"] for line in out.splitlines()}
    assert code == 0 and verdicts["registered.png"] == "attributed" and verdicts["unregistered.png"] == "not-fingerprinted"

    code, out, err = run_cli("calibrate", "--data_dir", tmp_path / "calib", "-q", "--fingerprints", 10)
    assert code == 0, err
    cal = Calibration.load(model_dir / "calibration.json")
    assert cal.confidence_threshold < 0.5 and cal.unknown_false_positive_rate == pytest.approx(1 / 31)
    code, out, err = run_cli("attribute", "--registry", db, "--jsonl", tmp_path / "test", "-q")
    records = {json.loads(line)["name"].rsplit("/", 1)[-1]: json.loads(line) for line in out.splitlines()}
    assert records["unregistered.png"]["verdict"] == "fingerprinted-unknown"
    assert records["registered.png"]["verdict"] == "attributed" and records["registered.png"]["model"] == "registered"
    assert sum(r["verdict"] == "not-fingerprinted" for r in records.values()) == 30
    code, out, err = run_cli("attribute", "--registry", db, "--jsonl", "--no-calibration", tmp_path / "test", "-q")
    assert json.loads(out.splitlines()[-1])["verdict"] in ("attributed", "not-fingerprinted")
    assert "fingerprinted-unknown" not in out
    assert load_calibration(decoder).images == 30
    assert math.isfinite(cal.optimism)


def test_calibrate_help(run_cli):
    code, out, _ = run_cli("calibrate", "--help")
    assert code == 0 and "Examples:" in out and "ganprint calibrate --model" in out
