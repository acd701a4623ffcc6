import csv
import json
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

from ganprint.cli import main
from ganprint.errors import GanprintError
from ganprint.fingerprints import bits_to_hex, bits_to_str
from ganprint.transfer import TransferOptions, choose_fingerprint, run_transfer, set_statistics, verdict

TINY32 = dict(resolution=32, z_dim=8, w_dim=16, g_channels=[16, 16, 8, 8], d_channels=[16, 16, 8, 8],
              mapping_layers=2, mbstd_group=2)  # fmt: skip
FINGERPRINT = "0123456789abcdef012345678"  # 100 bits, for codec-32


def checker_images(folder, count=16, size=28):
    """Grey checkerboards of varying cell size, like Fashion-MNIST: 28x28 single-channel."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cell = 2 + i % 5
        yy, xx = np.mgrid[:size, :size]
        a = (((yy // cell + xx // cell) % 2) * (120 + 8 * i)).astype(np.uint8)
        Image.fromarray(a, mode="L").save(folder / f"c{i:02d}.png")
    return folder


def tiny_options(data, out, **kw):
    base = dict(data=str(data), output_dir=str(out), num_images=12, kimg=0.016, fingerprint=FINGERPRINT,
                control_images=8, device="cpu", progress=False,
                gan=dict(network=TINY32, batch_size=4, snapshot_kimg=0, tick_kimg=0.008))  # fmt: skip
    base.update(kw)
    return TransferOptions(**base)


def run_cli(args) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return exc.code
    return 0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return checker_images(tmp_path_factory.mktemp("checker") / "imgs")


@pytest.fixture(scope="module")
def smoke(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "t"
    start = time.time()
    report = run_transfer(tiny_options(data, out))
    return out, report, time.time() - start


def test_pipeline_smoke_end_to_end(smoke):
    out, report, seconds = smoke
    assert seconds < 60
    for name in ("fingerprint.txt", "report.json", "report.md", "transfer.png", "curve.png",
                 "fingerprinted/embedded_fingerprints.txt", "generated/generated_images.csv",
                 "detection/detected_fingerprints.txt", "detection/detection_report.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    assert len(list((out / "fingerprinted" / "fingerprinted_images").glob("*.png"))) == 16
    assert len(list((out / "generated").glob("seed*.png"))) == 12
    (run,) = (out / "gan").iterdir()
    assert (run / "checkpoint.pt").is_file() and report["gan_run"] == str(run)
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    snapshots = sorted(run.glob("network-snapshot-*"))
    assert [r["kimg"] for r in report["curve"]] == [int(p.name[-6:]) for p in snapshots] and "Bit accuracy along" in (
        out / "report.md").read_text()
    assert (out / "fingerprint.txt").read_text().split()[0] == FINGERPRINT.lower()
    # every training image got the one fingerprint
    lines = (out / "fingerprinted" / "embedded_fingerprints.txt").read_text().splitlines()
    assert {line.split()[1] for line in lines} == {bits_to_str(choose_fingerprint(FINGERPRINT, 100))}
    # the picture: 4 rows (real, fingerprinted, difference, generated) of 8 images of 32 px, enlarged x2
    with Image.open(out / "transfer.png") as im:
        assert im.size == (512, 256)


def test_report_statistics_match_the_detection_files(smoke):
    out, report, _ = smoke
    sets = report["sets"]
    assert set(sets) == {"generated", "clean_real", "fingerprinted_real"}
    with open(out / "detection" / "detection_report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    gen = sets["generated"]
    assert gen["images"] == len(rows) == 12
    assert gen["mean_bit_accuracy"] == pytest.approx(np.mean([float(r["bit_accuracy"]) for r in rows]))
    assert gen["detected"] == sum(r["detected"] == "True" for r in rows)
    assert gen["median_p_value"] == pytest.approx(float(np.median([float(r["p_value"]) for r in rows])))
    # the controls are computed: clean real images near chance, fingerprinted ones read by the codec
    clean, marked = sets["clean_real"], sets["fingerprinted_real"]
    assert clean["images"] == marked["images"] == 8
    assert 0.3 < clean["mean_bit_accuracy"] < 0.7 and 0 < clean["pooled_p_value"] <= 1 and clean["detected"] == 0
    assert marked["mean_bit_accuracy"] > 0.95 and marked["detected"] == 8
    assert report["verdict"] == verdict(gen, clean)
    assert "fingerprinted real (codec ceiling)" in (out / "report.md").read_text()


def test_set_statistics_against_exact_binomial_sums():
    fp = choose_fingerprint(None, 20, seed=3)
    bits = fp.repeat(3, 1)
    bits[0, :4] = 1 - bits[0, :4]  # 16 of 20 match
    bits[1, :10] = 1 - bits[1, :10]  # 10 of 20
    s = set_statistics(bits, fp, false_positive_rate=0.01)  # image 2: 20 of 20
    tail = lambda k, n: sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n  # noqa: E731
    assert s["mean_bit_accuracy"] == pytest.approx(46 / 60)
    assert s["pooled_p_value"] == pytest.approx(tail(46, 60), rel=1e-9)
    assert s["median_p_value"] == pytest.approx(tail(16, 20), rel=1e-9)
    assert s["detected"] == 2  # P[>= 16 of 20] = 0.0059 <= 0.01; 10 of 20 is not
    assert s["min_bit_accuracy"] == pytest.approx(0.5)
    # majority bits: 0-3 flipped in two of three images (no match), 4-9 in one (match), 10-19 match
    assert s["consensus_matches"] == 16 and s["consensus_p_value"] == pytest.approx(tail(16, 20), rel=1e-9)


def test_a_decoder_bias_is_not_a_transfer():
    """Every image reads the same 100 bits, 60 of them equal to the fingerprint by chance: the pooled
    test calls that overwhelming, the consensus test (the verdict's) calls it chance."""
    fp = choose_fingerprint(None, 100, seed=5)
    biased = fp.clone()
    biased[:40] = 1 - biased[:40]
    bits = biased.repeat(1000, 1)
    bits[::7, 50:55] = 1 - bits[::7, 50:55]  # some per-image noise
    s = set_statistics(bits, fp)
    assert s["pooled_neg_log10_p"] > 50 and s["consensus_matches"] == 60
    assert s["consensus_p_value"] == pytest.approx(sum(math.comb(100, i) for i in range(60, 101)) / 2**100, rel=1e-9)
    assert verdict(s).startswith("fingerprint NOT detected")
    carried = set_statistics(torch.where(torch.rand(1000, 100, generator=torch.Generator().manual_seed(0)) < 0.4,
                                         1 - fp, fp), fp)  # fmt: skip # each image only 60% right
    assert carried["detected"] <= 20 and carried["consensus_matches"] == 100  # few detected one by one
    assert verdict(carried).startswith("fingerprint transferred")


def test_choose_fingerprint_and_verdicts():
    assert bits_to_hex(choose_fingerprint("0x" + FINGERPRINT, 100)) == FINGERPRINT
    a, b = choose_fingerprint(None, 100, 0), choose_fingerprint(None, 100, 1)
    assert torch.equal(a, choose_fingerprint(None, 100, 0)) and not torch.equal(a, b)
    with pytest.raises(GanprintError, match="hex digits"):
        choose_fingerprint("abc", 100)
    gen = {"false_positive_rate": 1e-6, "consensus_p_value": 1e-30, "consensus_matches": 99, "bits_per_image": 100,
           "mean_bit_accuracy": 0.9, "detected": 5, "images": 10}  # fmt: skip
    assert verdict(gen).startswith("fingerprint transferred")
    assert verdict(dict(gen, consensus_p_value=0.2)).startswith("fingerprint NOT detected")
    assert "warning" in verdict(gen, {"consensus_p_value": 1e-4}) and "warning" not in verdict(gen, {"consensus_p_value": 0.3})
    short = dict(gen, bits_per_image=16, consensus_p_value=0.5**16)  # 16 bits cannot reach 1e-6
    assert "16 bits cannot reach p <= 1e-06" in verdict(short)


def test_refuses_to_overwrite_an_earlier_report(smoke):
    out, _, _ = smoke
    before = (out / "report.json").read_bytes()
    with pytest.raises(GanprintError, match="already exists"):
        run_transfer(tiny_options(out.parent, out))
    assert (out / "report.json").read_bytes() == before


def test_snapshot_curve_reads_what_the_saved_pngs_give(smoke, tmp_path):
    from ganprint.codec.importing import load_codec
    from ganprint.transfer import plot_curves, snapshot_curve

    out, report, _ = smoke
    codec = load_codec("codec-32", device="cpu")
    fingerprint = choose_fingerprint(FINGERPRINT, 100)
    (run,) = (out / "gan").iterdir()
    rows = snapshot_curve(run, codec, fingerprint, num_images=12, seed=0, progress=False)
    assert [r["snapshot"] for r in rows] == sorted(p.name for p in run.glob("network-snapshot-*"))
    assert rows[-1]["kimg"] == int(rows[-1]["snapshot"][-6:]) and rows[-1]["images"] == 12
    # the same seeds, rounded to 8 bits in memory, decode exactly as the PNGs that detect read
    gen = report["sets"]["generated"]
    assert rows[-1]["mean_bit_accuracy"] == pytest.approx(gen["mean_bit_accuracy"], abs=1e-9)
    assert rows[-1]["detected"] == gen["detected"]
    plot_curves({"tiny": rows}, tmp_path / "curve.png", title="t")
    with Image.open(tmp_path / "curve.png") as im:
        assert im.size == (720, 432)
    with pytest.raises(GanprintError, match="no network-snapshot"):
        snapshot_curve(tmp_path, codec, fingerprint, progress=False)


def test_bad_inputs_fail_before_any_work(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanprintError, match="no images found"):
        run_transfer(tiny_options(tmp_path / "empty", tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    # a model of another kind as the codec, through the CLI: one line, exit 1
    from ganprint.gan.network import GanConfig, GanNetwork

    GanNetwork(GanConfig(**TINY32)).save_pretrained(tmp_path / "gan-model")
    code = run_cli(["transfer", "run", "--data", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "o"),
                    "--codec", str(tmp_path / "gan-model"), "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and "ganprint.gan" in err and len(err.splitlines()) == 1
    code = run_cli(["transfer", "run", "--data", "x", "--output_dir", str(tmp_path / "o"), "--fingerprint", "12", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "hex digits" in err
