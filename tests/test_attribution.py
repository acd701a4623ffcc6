"""Detection statistics and attribution: p-values against exact tails, Bonferroni over the registry,
exact matching, verdict rules, and `ganprint attribute` end to end with a stand-in decoder."""

from __future__ import annotations

import json
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganprint.decoders
from ganprint.attribution import (
    ATTRIBUTED,
    NOT_FINGERPRINTED,
    UNKNOWN,
    Attributor,
    FingerprintIndex,
    hamming,
    pack_bits,
)
from ganprint.decoders import Decoder
from ganprint.detection import DetectionResult, NullModel
from ganprint.errors import GanprintError
from ganprint.registry import Registry


def exact_tail(k: int, n: int) -> Fraction:
    """P[Bin(n, 1/2) >= k], exactly."""
    return Fraction(sum(comb(n, i) for i in range(max(k, 0), n + 1)), 2**n)


def exact_poisson_binomial_tail(k: int, probs: list[Fraction]) -> Fraction:
    pmf = [Fraction(1)]
    for p in probs:  # multiply the generating polynomial by (1 - p + p x)
        pmf = [(pmf[i] if i < len(pmf) else 0) * (1 - p) + (pmf[i - 1] * p if i else 0) for i in range(len(pmf) + 1)]
    return sum(pmf[max(k, 0):], Fraction(0))


# ------------------------------------------------------------------------------------- p-values
@pytest.mark.parametrize("length", [1, 16, 48, 100, 128])
def test_null_model_p_values_equal_exact_binomial_tails(length):
    null = NullModel.fair(length)
    for k in range(length + 2):
        want = float(exact_tail(k, length)) if k <= length else 0.0
        assert null.p_value(k) == pytest.approx(want, rel=1e-10, abs=1e-300)
        if k <= length:
            want_log = -float(np.log10(float(exact_tail(k, length)))) if exact_tail(k, length) > 0 else None
            assert null.neg_log10_p(k) == pytest.approx(max(0.0, want_log), rel=1e-9, abs=1e-12)


def test_calibrated_null_equals_exact_poisson_binomial_tail():
    rng = np.random.default_rng(0)
    probs = [Fraction(int(x), 1000) for x in rng.integers(500, 1001, size=24)]
    null = NullModel.calibrated([float(p) for p in probs])
    for k in range(26):
        assert null.p_value(k) == pytest.approx(float(exact_poisson_binomial_tail(k, probs)), rel=1e-9, abs=1e-300)
    # all-fair calibration is the binomial, thresholds included
    fair = NullModel.calibrated([0.5] * 100)
    assert [fair.threshold(a) for a in (1e-2, 1e-6, 1e-12)] == [NullModel.fair(100).threshold(a) for a in (1e-2, 1e-6, 1e-12)]


def test_detection_result_fields():
    logits = torch.tensor([[3.0, -2.0, 0.5, -0.1], [-4.0, 4.0, 4.0, 4.0]])
    fingerprint = torch.tensor([1.0, 0.0, 1.0, 1.0])
    result = DetectionResult.from_logits(logits, fingerprint, false_positive_rate=0.1)
    assert result.bits.tolist() == [[1, 0, 1, 0], [0, 1, 1, 1]]
    assert result.matches == [3, 2]
    assert result.bit_accuracy.tolist() == [0.75, 0.5]
    assert result.p_value == [pytest.approx(float(exact_tail(3, 4))), pytest.approx(float(exact_tail(2, 4)))]
    assert result.threshold == 4 and result.detected == [False, False]  # only 4/4 matches give p = 1/16 <= 0.1
    assert torch.allclose(result.probabilities, torch.sigmoid(logits))
    assert result.confidence[1].item() == pytest.approx(float(np.tanh(2.0)))
    records = result.records(["a", "b"])
    assert records[0]["bits"] == "1010" and records[1]["matches"] == 2 and records[0]["detected"] is False


def test_detection_threshold_is_the_smallest_passing_count():
    result = DetectionResult.from_logits(torch.ones(1, 4), torch.ones(4), false_positive_rate=1 / 16)
    assert result.threshold == 4 and result.detected == [True]  # p = 1/16 exactly passes at 1/16


# ---------------------------------------------------------------------------------- Bonferroni
@pytest.mark.parametrize("size, length, rate", [(1, 100, 1e-6), (100, 100, 1e-6), (1000, 128, 1e-3), (37, 48, 0.01)])
def test_bonferroni_over_the_registry(size, length, rate):
    rng = np.random.default_rng(size)
    bits = rng.integers(0, 2, (size, length), dtype=np.uint8)
    att = Attributor([f"m{i}" for i in range(size)], bits, false_positive_rate=rate)
    for k in range(length + 1):
        p, corrected, nlp = att.corrected(k)
        want = min(Fraction(1), size * exact_tail(k, length))
        assert p == pytest.approx(float(exact_tail(k, length)), rel=1e-9, abs=1e-300)
        assert corrected == pytest.approx(float(want), rel=1e-9, abs=1e-300)
    # the decision radius: the largest distance d with N * P[Bin >= L - d] <= rate
    passing = [d for d in range(length + 1) if size * exact_tail(length - d, length) <= Fraction(rate)]
    assert att.decision_radius == (max(passing) if passing else -1)


def test_more_registered_fingerprints_need_more_matching_bits():
    bits = np.zeros((1, 100), dtype=np.uint8)
    radii = [Attributor(["m"] * n, np.repeat(bits, n, axis=0)).decision_radius for n in (1, 100, 10_000)]
    assert radii == [26, 22, 18]  # 74, 78 and 82 matching bits of 100 at FPR 1e-6


# ------------------------------------------------------------------------------------- matching
@pytest.mark.parametrize("backend", ["numpy", "faiss"])
@pytest.mark.parametrize("length", [5, 64, 100, 130])
def test_index_search_is_exact(backend, length):
    if backend == "faiss":
        pytest.importorskip("faiss")
    rng = np.random.default_rng(length)
    reg = rng.integers(0, 2, (2000, length), dtype=np.uint8)
    queries = rng.integers(0, 2, (40, length), dtype=np.uint8)
    queries[:10] = reg[:10]
    queries[3, : length // 5] ^= 1
    radius = length // 2 - 1
    index = FingerprintIndex(reg, backend=backend, threads=2)
    index.parallel_min_work = 0  # exercise the threaded path on this small set
    found = index.search(queries, radius)
    for q, (dist, rows) in zip(queries, found):
        d = (reg != q).sum(axis=1)  # independent: plain comparisons, no packing
        want = sorted((int(d[i]), i) for i in np.nonzero(d <= radius)[0])
        assert list(zip(dist.tolist(), rows.tolist())) == want


def test_packing_and_hamming():
    a = np.array([[1, 0, 1] + [0] * 62, [1] * 65])
    packed = pack_bits(a)
    assert packed.shape == (2, 2) and packed.dtype == np.uint64
    assert hamming(packed, packed).tolist() == [[0, 63], [63, 0]]


# ------------------------------------------------------------------------------------- verdicts
def _logits(bits: np.ndarray, scale: float = 6.0) -> torch.Tensor:
    return torch.tensor((bits.astype(np.float32) * 2 - 1) * scale)


def test_verdicts():
    rng = np.random.default_rng(0)
    length = 64
    reg = rng.integers(0, 2, (50, length), dtype=np.uint8)
    near = reg[7].copy()
    near[:5] ^= 1  # 5 bits damaged
    twin = reg[7].copy()
    twin[:4] ^= 1  # registered too: a near copy of model 7
    models = [f"m{i}" for i in range(50)] + ["twin"]
    att = Attributor(models, np.vstack([reg, twin]), confidence_threshold=0.9)
    clean = rng.integers(0, 2, (3, length), dtype=np.uint8)
    queries = np.vstack([reg[3], near, clean])
    logits = torch.cat([_logits(queries[:2]), _logits(clean[:1], 0.1), _logits(clean[1:2], 6.0), _logits(clean[2:], 0.1)])
    results = att.attribute_logits(logits, ["exact", "near", "clean", "confident", "clean2"])
    by = {r.name: r for r in results}
    assert by["exact"].verdict == ATTRIBUTED and by["exact"].model == "m3" and by["exact"].distance == 0
    assert by["exact"].within_radius == 1 and by["exact"].corrected_p_value == pytest.approx(51 * 2.0**-64)
    # 'near' is 5 bits from m7 and 1 bit from 'twin': both within the radius -> ambiguous
    assert by["near"].verdict == UNKNOWN and by["near"].nearest == "twin" and by["near"].within_radius == 2
    assert "ambiguous" in by["near"].reason and by["near"].model is None
    assert by["clean"].verdict == NOT_FINGERPRINTED and by["clean"].model is None
    assert by["confident"].verdict == UNKNOWN and "confidence" in by["confident"].reason
    assert by["clean2"].verdict == NOT_FINGERPRINTED
    # without the twin, 5 damaged bits still attribute to m7
    alone = Attributor(models[:50], reg).attribute_logits(_logits(near[None]))[0]
    assert alone.verdict == ATTRIBUTED and alone.model == "m7" and alone.distance == 5 and alone.matches == 59


def test_empty_registry_and_impossible_decisions():
    att = Attributor([], np.zeros((0, 32), np.uint8))
    r = att.attribute_logits(_logits(np.ones((1, 32), np.uint8)))[0]
    assert r.verdict == NOT_FINGERPRINTED and r.registry_size == 0 and "no registered" in r.reason
    short = Attributor(["a"], np.ones((1, 8), np.uint8))  # 8 bits never reach 1e-6
    r = short.attribute_logits(_logits(np.ones((1, 8), np.uint8)))[0]
    assert short.decision_radius == -1 and r.verdict == NOT_FINGERPRINTED and "cannot reach" in r.reason


def test_calibrated_null_shrinks_the_radius():
    reg = np.zeros((10, 100), np.uint8)
    reg[np.arange(10), np.arange(10)] = 1
    fair = Attributor([str(i) for i in range(10)], reg)
    biased = Attributor([str(i) for i in range(10)], reg, null=NullModel.calibrated([0.7] * 100))
    assert biased.decision_radius < fair.decision_radius


# ------------------------------------------------------------------------------------ the CLI
LENGTH = 64


def _stand_in_decoder(model_dir: Path) -> Decoder:
    """Reads bit j from the red value of pixel (0, j): confident when far from grey."""
    return Decoder(name="stand-in", method="codec", resolution=64, fingerprint_length=LENGTH,
                   decode_logits=lambda x: (x[:, 0, 0, :LENGTH] - 0.5) * 40, model_dir=model_dir)  # fmt: skip


def _write(path: Path, bits: np.ndarray | None, rng) -> None:
    pixels = rng.uniform(0.47, 0.53, size=(64, 64, 3))  # grey: the stand-in reads low confidence
    if bits is not None:
        pixels[0, :LENGTH, 0] = bits
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    monkeypatch.setattr(ganprint.decoders, "load_decoder", lambda *a, **k: _stand_in_decoder(tmp_path / "model"))
    (tmp_path / "model").mkdir()
    db = tmp_path / "fp.db"
    with Registry(db, create=True) as reg:
        entries = reg.issue([f"model-{i}" for i in range(5)], LENGTH, seed=0)
        reg.issue("other-method", LENGTH, method="scalable", seed=1)
    for i, e in enumerate(entries):
        bits = e.bits.copy()
        bits[:i] ^= 1  # up to 4 damaged bits
        _write(tmp_path / "marked" / f"from-{e.model}.png", bits, rng)
    for i in range(4):
        _write(tmp_path / "clean" / f"clean-{i}.png", None, rng)
    return tmp_path, db, entries


def test_attribute_cli_table_jsonl_and_exit_codes(run_cli, setup):
    tmp, db, entries = setup
    code, out, err = run_cli("attribute", "--registry", db, tmp / "marked", tmp / "clean" / "clean-0.png", "-q")
    assert code == 0, err
    rows = out.splitlines()
    assert rows[0].split()[:2] == ["verdict", "model"]
    by_image = {line.split()[-1]: line.split() for line in rows[1:]}
    assert len(by_image) == 6
    for e in entries:
        line = by_image[str(tmp / "marked" / f"from-{e.model}.png")]
        assert line[0] == "attributed" and line[1] == e.model
    assert by_image[str(tmp / "clean" / "clean-0.png")][0] == "not-fingerprinted"
    assert "5 attributed, 0 fingerprinted-unknown, 1 not-fingerprinted" in err

    code, out, err = run_cli("attribute", "--registry", db, "--jsonl", tmp / "marked", "-q")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["verdict"] for r in records] == ["attributed"] * 5
    for i, r in enumerate(sorted(records, key=lambda r: r["model"])):
        assert r["distance"] == i and r["registry_size"] == 5  # the scalable fingerprint is not compared
        assert r["corrected_p_value"] == pytest.approx(min(1.0, 5 * float(exact_tail(LENGTH - i, LENGTH))))

    # no fingerprints at all: every verdict 'not-fingerprinted', exit 3
    code, out, err = run_cli("attribute", "--registry", db, "--jsonl", tmp / "clean", "-q")
    assert code == 3 and [json.loads(line)["verdict"] for line in out.splitlines()] == ["not-fingerprinted"] * 4


def test_attribute_cli_errors(run_cli, setup):
    tmp, db, _ = setup
    code, out, err = run_cli("attribute", "--registry", tmp / "none.db", tmp / "clean")
    assert code == 1 and "no registry here" in err and not (tmp / "none.db").exists()
    code, out, err = run_cli("attribute", "--registry", db, tmp / "nothing-here")
    assert code == 1 and err.strip().endswith("nothing-here: no such file or directory")
    code, out, err = run_cli("attribute", "--registry", db)
    assert code == 2 and "PATH" in err
    (tmp / "broken.db").write_bytes(b"\x00" * 1000)
    code, out, err = run_cli("attribute", "--registry", tmp / "broken.db", tmp / "clean")
    assert code == 1 and "damaged" in err and "Traceback" not in err


def test_attribute_help(run_cli):
    code, out, _ = run_cli("attribute", "--help")
    assert code == 0 and "Exit codes: 0" in out and "Examples:" in out and "ganprint attribute --registry" in out


def test_scalable_decoder_and_images(tmp_path):
    from ganprint.scalable.config import ScalableConfig
    from ganprint.scalable.network import ScalableNetwork

    with pytest.raises(GanprintError):
        ganprint.decoders.load_decoder(tmp_path / "none", method="scalable")
    torch.manual_seed(0)
    config = ScalableConfig(fingerprint_size=24, z_dim=8, g_channels=(16, 8, 8, 8))
    ScalableNetwork(config).save_pretrained(tmp_path / "net")
    decoder = ganprint.decoders.load_decoder(tmp_path / "net", method="scalable")
    assert (decoder.method, decoder.fingerprint_length, decoder.resolution) == ("scalable", 24, 32)
    images = ganprint.decoders.fingerprinted_images(str(tmp_path / "net"), torch.ones(24), 3, seed=1)
    assert images.shape == (3, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, ganprint.decoders.fingerprinted_images(str(tmp_path / "net"), torch.ones(24), 3, 1))
    assert decoder.decode_logits(images).shape == (3, 24)
    with pytest.raises(GanprintError, match="works at 32px, not 64px"):
        ganprint.decoders.load_decoder(tmp_path / "net", method="scalable", resolution=64)


def test_attribute_verb_with_the_shipped_codec(tmp_path):
    """ganprint.attribute: fingerprinted images go to their model, clean ones to nobody."""
    import ganprint
    from ganprint.data import open_source, pil_to_tensor, preprocess

    codec = ganprint.load_codec("codec-32")
    db = tmp_path / "fp.db"
    with Registry(db, create=True) as reg:
        a, b = reg.issue(["model-a", "model-b"], length=codec.config.fingerprint_length)
    source = open_source("samples")
    clean = torch.stack([pil_to_tensor(preprocess(source.image(i), 32)) for i in range(8)])
    marked = torch.cat([codec.embed(clean[:4], ganprint.parse_fingerprint(a.bit_string)),
                        codec.embed(clean[4:], ganprint.parse_fingerprint(b.bit_string))])  # fmt: skip
    marked = (marked * 255).round() / 255  # as saved in a PNG
    got = ganprint.attribute(torch.cat([marked, clean]), db, model="codec-32")
    assert [r.model for r in got] == ["model-a"] * 4 + ["model-b"] * 4 + [None] * 8
    assert all(r.verdict == "not-fingerprinted" for r in got[8:])
