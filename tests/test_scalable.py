import csv
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import check_resume_refuses_the_checkpoint_of, check_resume_reproduces_an_uninterrupted_run
from helpers import check_run_folder, check_seed_decides_the_run, check_two_processes_equal_one, checkpoint_tensors
from helpers import tiny_run_options
from helpers import cli_exit_code as run_cli

from ganprint.data import open_source
from ganprint.errors import GanprintError
from ganprint.fingerprints import bits_to_hex, bits_to_str, read_fingerprint_file
from ganprint.scalable.config import ScalableConfig
from ganprint.scalable.generate import draw, generate_images, parse_seeds
from ganprint.scalable.network import ScalableNetwork, from_unit, quantize_straight_through, quantize_unit
from ganprint.scalable.train import TrainOptions, load_run_options, train_scalable
from ganprint.scalable.training_data import UniformImages

TINY_NET = dict(resolution=16, fingerprint_size=16, z_dim=8, w_dim=16, g_channels=[16, 16, 8],
                d_channels=[16, 16, 8], mapping_layers=2, mbstd_group=2)  # fmt: skip


def _blob_images(folder, count=24, size=16, seed=0):
    """Coloured squares on black: a learnable toy dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        a = np.zeros((size, size, 3), np.uint8)
        x, y = rng.integers(0, size - 6, 2)
        a[y : y + 6, x : x + 6] = rng.integers(60, 255, 3)
        Image.fromarray(a).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return _blob_images(tmp_path_factory.mktemp("blobs") / "imgs")


def options(data, out, **kw):
    return tiny_run_options(TrainOptions, data, out, TINY_NET, **{"metrics_kimg": 0.012, "metric_images": 32, **kw})


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    return ScalableNetwork(ScalableConfig(**TINY_NET)).eval()


# ----------------------------------------------------------------------------- training


def test_run_folder_contents(blobs, tmp_path):
    run = train_scalable(options(blobs, tmp_path))
    assert run.name == "00000-scalable-cpu32-16px-16b"
    grids = ["fakes-arbitrary", "fakes-fingerprints-same", "fakes-latents-same"]
    options_json, net = check_run_folder(run, "ganprint.scalable.train", grids, ScalableNetwork)
    assert options_json["res_modulated_range"] == "4-16" and options_json["gamma"] == pytest.approx(1.0)
    assert options_json["c_reconstruction_weight"] == 10.0 and options_json["decoder_lr"] == pytest.approx(0.01)  # cpu preset
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4, 6]  # ticks every 2 steps, metrics at 3 and 6
    assert len((run / "metric-bit_accuracy.txt").read_text().splitlines()) == 2
    # the snapshot is inference-only: G (EMA) + F
    assert net.F is not None and net.config.fingerprint_size == 16


def test_resume_reproduces_an_uninterrupted_run(blobs, tmp_path):
    check_resume_reproduces_an_uninterrupted_run(train_scalable, load_run_options, lambda out: options(blobs, out),
                                                 tmp_path)  # fmt: skip


def test_immunized_run_resumes_exactly_and_reports_augmented_accuracy(blobs, tmp_path):
    check_resume_reproduces_an_uninterrupted_run(
        train_scalable, load_run_options, lambda out: options(blobs, out, augment="noise=0.2,blur,crop", augment_ramp=2),
        tmp_path)  # fmt: skip
    run = next((tmp_path / "a").iterdir())
    assert json.loads((run / "options.json").read_text())["augment"] == "noise=0.2,blur,crop"
    lines = (run / "metric-bit_accuracy.txt").read_text().splitlines()
    assert len(lines) == 2 and all("bit_accuracy_augmented" in line and "latent_share" in line for line in lines)
    # the perturbations reach F: the same seed without them trains other weights
    plain = checkpoint_tensors(train_scalable(options(blobs, tmp_path / "plain")))[0]
    immunized = checkpoint_tensors(run)[0]
    assert any(not torch.equal(plain[k], immunized[k]) for k in plain if k.startswith("F."))


def test_decoding_both_codes_through_8_bits_resumes_exactly_and_changes_training(blobs, tmp_path):
    check_resume_reproduces_an_uninterrupted_run(
        train_scalable, load_run_options,
        lambda out: options(blobs, out, decode_both=True, decode_uint8=True, network={**TINY_NET, "carrier_std": 1.0}),
        tmp_path)  # fmt: skip
    run = next((tmp_path / "a").iterdir())
    saved = json.loads((run / "options.json").read_text())
    assert saved["decode_both"] is True and saved["decode_uint8"] is True and saved["network"]["carrier_std"] == 1.0
    # each option reaches F: the same seed without it trains other decoder weights
    def decoder(name, both, uint8):
        run = train_scalable(options(blobs, tmp_path / name, decode_both=both, decode_uint8=uint8))
        return {k: v for k, v in checkpoint_tensors(run)[0].items() if k.startswith("F.")}

    plain = decoder("plain", False, False)
    for name, both, uint8 in (("both", True, False), ("uint8", False, True)):
        other = decoder(name, both, uint8)
        assert any(not torch.equal(plain[k], other[k]) for k in plain), name


def test_code_grad_scope_code_keeps_the_code_loss_off_the_content_parameters(blobs, tmp_path):
    from ganprint.scalable.train import code_parameters

    G = ScalableNetwork(ScalableConfig(**TINY_NET)).G
    code = {id(p) for p in code_parameters(G)}
    names = {n for n, p in G.named_parameters() if id(p) in code}
    assert names and all(n.startswith("mapping.") or ".affine." in n for n in names)
    assert any("conv" in n and "weight" in n for n, p in G.named_parameters() if id(p) not in code)

    def generator_after_one_step(name, scope, weight, share=0.0):  # G's weights after one step (Adam's first update)
        run = train_scalable(options(blobs, tmp_path / name, code_grad_scope=scope, c_reconstruction_weight=weight,
                                     code_content_grad=share, total_kimg=0.004, snapshot_kimg=0.004))  # fmt: skip
        return {k[2:]: v for k, v in checkpoint_tensors(run)[0].items() if k.startswith("G.")}

    def differs(a, b, keys):
        return {k for k in keys if not torch.equal(a[k], b[k])}

    content = {n for n, _ in G.named_parameters()} - names
    scoped = generator_after_one_step("scoped", "code", 10.0), generator_after_one_step("scoped0", "code", 0.0)
    full = generator_after_one_step("full", "all", 10.0), generator_after_one_step("full0", "all", 0.0)
    assert not differs(*scoped, content) and differs(*scoped, names)  # the code loss moved only mapping + affines
    assert differs(*full, content)  # the paper's loss moves the content parameters too
    shared = (generator_after_one_step("shared", "code", 10.0, 0.5), generator_after_one_step("shared0", "code", 0.0, 0.5))
    assert differs(*shared, content)  # --code-content-grad 0.5: a share reaches them
    with pytest.raises(GanprintError, match="between 0 and 1"):
        train_scalable(options(blobs, tmp_path / "bad2", code_grad_scope="code", code_content_grad=2.0))
    with pytest.raises(GanprintError, match="code_grad_scope"):
        train_scalable(options(blobs, tmp_path / "bad", code_grad_scope="some"))


def test_z_styles_run_resumes_exactly_and_snapshots_carry_z_mapping(blobs, tmp_path):
    check_resume_reproduces_an_uninterrupted_run(
        train_scalable, load_run_options, lambda out: options(blobs, out, z_styles=True), tmp_path)
    run = next((tmp_path / "a").iterdir())
    assert json.loads((run / "options.json").read_text())["network"]["z_styles"] is True
    net = ScalableNetwork.from_pretrained(run)
    assert net.G.mapping_z is not None and net.config.z_styles


def test_runs_from_before_the_decoding_options_resume_as_they_were(blobs, tmp_path):
    run = train_scalable(options(blobs, tmp_path, decode_both=True, decode_uint8=True))
    saved = json.loads((run / "options.json").read_text())
    for key in ("decode_both", "decode_uint8"):
        del saved[key]
    del saved["network"]["carrier_std"], saved["carrier_std"]  # both spellings came later
    (run / "options.json").write_text(json.dumps(saved))
    loaded = load_run_options(run).resolved()
    assert loaded.decode_both is False and loaded.decode_uint8 is False and loaded.network["carrier_std"] == 0.0


def test_carrier_std_option_sets_the_maps_and_is_kept_on_resume(blobs, tmp_path, capsys):
    assert options(blobs, tmp_path).resolved().network["carrier_std"] == 1.0  # the cpu preset's
    run = train_scalable(options(blobs, tmp_path, carrier_std=0.0, total_kimg=0.004))
    assert json.loads((run / "options.json").read_text())["carrier_std"] == 0.0
    G = ScalableNetwork.from_pretrained(run).G
    assert all(getattr(m, "carrier", None) is None for m in G.modules())
    code = run_cli(["scalable", "train", "--resume", str(run), "--carrier-std", "0.1", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "carrier-std 0.0, not 0.1" in err and len(err.splitlines()) == 1
    small = ScalableNetwork.from_pretrained(train_scalable(options(blobs, tmp_path / "small", carrier_std=0.1,
                                                                   total_kimg=0.004))).G  # fmt: skip
    carriers = [m.carrier for m in small.modules() if getattr(m, "carrier", None) is not None]
    assert carriers and float(torch.cat([c.detach().flatten() for c in carriers]).std()) < 0.2


def test_bad_augment_spec_is_a_one_line_error(blobs, tmp_path, capsys):
    code = run_cli(["scalable", "train", "--data", str(blobs), "--output-dir", str(tmp_path / "runs"),
                    "--augment", "noise,sharpen", "--total-kimg", "0.008"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and "unknown perturbation 'sharpen'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_same_seed_same_run_other_seed_other_run(blobs, tmp_path):
    check_seed_decides_the_run(train_scalable, lambda seed: options(blobs, tmp_path, total_kimg=0.008, seed=seed))


def test_two_process_ddp_equals_one_process(blobs, tmp_path):
    check_two_processes_equal_one(train_scalable, lambda out: options(blobs, out, total_kimg=0.004, metrics_kimg=0,
                                                                      snapshot_kimg=0), tmp_path)  # fmt: skip


def test_short_run_lifts_bit_accuracy_above_chance(blobs, tmp_path):
    net = dict(TINY_NET, fingerprint_size=8)
    run = train_scalable(options(blobs, tmp_path, network=net, total_kimg=1.6, batch_size=8, tick_kimg=0.4,
                                 metrics_kimg=0.8, metric_images=256, snapshot_kimg=0, seed=0))  # fmt: skip
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    final = [s for s in stats if "metrics/bit_accuracy" in s][-1]
    # 256 images x 8 bits: chance is 0.5 with a standard deviation of 0.011, so 0.6 is 9 sigma away
    assert final["metrics/bit_accuracy"] > 0.6, final
    assert final["metrics/bit_accuracy_uint8"] > 0.6, final


# ----------------------------------------------------------------------------- generate / export / detect


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds(" 0-1, 7 ,10-11") == [0, 1, 7, 10, 11]
    for bad, message in (("a-3", "cannot read"), ("5-2", "backwards"), ("1,,2", "cannot read"), ("-1", "cannot read"),
                         ("1,1", "appears twice"), ("", "cannot read")):  # fmt: skip
        with pytest.raises(GanprintError, match=message):
            parse_seeds(bad)


def _read_record(folder):
    with open(folder / "generated_images.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_generate_record_and_rng_order(tiny_net, tmp_path):
    generate_images(tiny_net, parse_seeds("3,7,11"), tmp_path / "plain", progress=False)
    generate_images(tiny_net, parse_seeds("3,7,11"), tmp_path / "same-z", identical_latent=True, progress=False)
    generate_images(tiny_net, parse_seeds("3,7,11"), tmp_path / "same-c", identical_fingerprint=True, progress=False)
    generate_images(tiny_net, [7], tmp_path / "alone", progress=False)
    rows = _read_record(tmp_path / "plain")
    assert [r["name"] for r in rows] == ["seed0003.png", "seed0007.png", "seed0011.png"]
    for row, seed in zip(rows, (3, 7, 11)):  # the documented order: z then c from the seed's generator
        g = torch.Generator().manual_seed(seed)
        torch.randn(8, generator=g)
        c = torch.randint(0, 2, (16,), generator=g).float()
        assert row["fingerprint"] == bits_to_str(c) and row["fingerprint_hex"] == bits_to_hex(c)
        assert row["seed"] == row["latent_seed"] == row["fingerprint_seed"] == str(seed)
    txt = read_fingerprint_file(tmp_path / "plain" / "embedded_fingerprints.txt")
    assert {k: bits_to_str(v) for k, v in txt.items()} == {r["name"]: r["fingerprint"] for r in rows}

    def pixels(folder, name):
        return np.asarray(Image.open(tmp_path / folder / name))

    def same_image(a, b):
        # The same draws; a batch of another size may take other CPU kernels (oneDNN picks them by
        # shape), whose float rounding can move a pixel across an 8-bit step: at most one level.
        a, b = a.astype(int), b.astype(int)
        return np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01

    # a seed means the same image whatever else is generated with it
    assert same_image(pixels("plain", "seed0007.png"), pixels("alone", "seed0007.png"))
    # flags only choose which draws are used: the first seed's image is unchanged
    for folder in ("same-z", "same-c"):
        assert same_image(pixels("plain", "seed0003.png"), pixels(folder, "seed0003.png"))
    same_c = _read_record(tmp_path / "same-c")
    assert {r["fingerprint"] for r in same_c} == {rows[0]["fingerprint"]}
    assert [r["latent_seed"] for r in same_c] == ["3", "7", "11"]
    same_z = _read_record(tmp_path / "same-z")
    assert [r["latent_seed"] for r in same_z] == ["3", "3", "3"]
    assert [r["fingerprint"] for r in same_z] == [r["fingerprint"] for r in rows]
    z3, c11, _ = draw(tiny_net, 3)[0], draw(tiny_net, 11)[1], None
    expected = tiny_net.generate(z3.view(1, -1), c11.view(1, -1))[0]
    got = torch.from_numpy(pixels("same-z", "seed0011.png").copy()).permute(2, 0, 1).float() / 255
    assert torch.allclose(got, quantize_unit(expected), atol=1 / 255 + 1e-6)


def test_generate_refuses_to_overwrite_and_bad_fingerprints(tiny_net, tmp_path):
    out = tmp_path / "gen"
    generate_images(tiny_net, [0, 1], out, progress=False)
    before = (out / "seed0000.png").read_bytes()
    with pytest.raises(GanprintError, match="already exists"):
        generate_images(tiny_net, [0], out, progress=False)
    assert (out / "seed0000.png").read_bytes() == before
    for bad in ("01010", "0x12345", "zz" * 8, "01" * 9):  # ("0101" would be valid hex for 16 bits)
        with pytest.raises(GanprintError):
            generate_images(tiny_net, [5], tmp_path / "other", fingerprint=bad, progress=False)
    assert not (tmp_path / "other" / "seed0005.png").exists()
    generate_images(tiny_net, [5, 6], tmp_path / "fp", fingerprint="0xa5c3", progress=False)
    assert {r["fingerprint_hex"] for r in _read_record(tmp_path / "fp")} == {"a5c3"}


@pytest.fixture(scope="module")
def tiny_net_z_styles():
    torch.manual_seed(0)
    return ScalableNetwork(ScalableConfig(**TINY_NET, z_styles=True, carrier_std=1.0)).eval()


@pytest.mark.parametrize("net_fixture", ["tiny_net", "tiny_net_z_styles"])
def test_export_equals_conditioned_generator_through_files(net_fixture, request, tmp_path):
    tiny_net = request.getfixturevalue(net_fixture)
    fingerprint = "1011001110001111"
    full_dir, exported_dir = tmp_path / "full", tmp_path / "exported"
    tiny_net.save_pretrained(full_dir)
    assert run_cli(["scalable", "export", "--network", str(full_dir), "--fingerprint", fingerprint,
                    "--output", str(exported_dir)]) == 0  # fmt: skip
    exported = ScalableNetwork.from_pretrained(exported_dir)
    config = json.loads((exported_dir / "config.json").read_text())
    assert config["kind"] == "ganprint.scalable.fingerprinted" and config["fingerprint"] == fingerprint
    assert exported.F is None and exported.G.mapping is None
    z = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([float(b) for b in fingerprint]).expand(10, -1)
    torch.testing.assert_close(exported.generate(z), tiny_net.generate(z, c), rtol=0, atol=1e-5)
    raw_full = tiny_net.G(z, c)
    # With z styles the exported layers demodulate at run time, summing in another order: float
    # rounding then grows with the raw outputs' size (up to ~1e-6 of it).
    rtol = 1e-5 if net_fixture == "tiny_net_z_styles" else 0
    torch.testing.assert_close(exported.G(z), raw_full, rtol=rtol, atol=1e-5)
    # generating from the exported model records its built-in fingerprint
    generate_images(exported, [0, 1], tmp_path / "gen", progress=False)
    assert {r["fingerprint"] for r in _read_record(tmp_path / "gen")} == {fingerprint}
    with pytest.raises(GanprintError, match="takes no --fingerprint"):
        generate_images(exported, [2], tmp_path / "gen2", fingerprint=fingerprint, progress=False)
    with pytest.raises(GanprintError, match="no decoder"):
        exported.decode_logits(torch.zeros(1, 3, 16, 16))


def test_tune_decoder_trains_f_alone_and_keeps_the_generator(tiny_net, tmp_path, capsys):
    source, tuned_dir = tmp_path / "net", tmp_path / "tuned"
    tiny_net.save_pretrained(source, extra={"training": {"kimg": 1.0}})
    assert run_cli(["scalable", "tune-decoder", "--network", str(source), "--output", str(tuned_dir), "--kimg", "8",
                    "--lr", "0.01", "--batch", "64", "-q"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip()
    config = json.loads((tuned_dir / "config.json").read_text())
    record = config["decoder_tuning"]
    assert config["training"] == {"kimg": 1.0} and record["steps"] == 125 and record["lr"] == 0.01
    # the random network's G carries its 16 bits; F alone learns to read them from 8-bit images
    # (1,024 images x 16 bits: chance is 0.5 +- 0.004; measured 0.49 -> 0.63)
    assert record["bit_accuracy_uint8_before"] < 0.52 and record["bit_accuracy_uint8_after"] > 0.58, record
    assert f"{record['bit_accuracy_uint8_after']:.4f}" in line
    tuned = ScalableNetwork.from_pretrained(tuned_dir)
    for k, v in tiny_net.G.state_dict().items():
        assert torch.equal(v, tuned.G.state_dict()[k]), k
    assert any(not torch.equal(v, tuned.F.state_dict()[k]) for k, v in tiny_net.F.state_dict().items())
    # reproducible; refuses to overwrite; an exported model has no decoder to tune
    assert run_cli(["scalable", "tune-decoder", "--network", str(source), "--output", str(tuned_dir), "--kimg", "8",
                    "--lr", "0.01", "--batch", "64", "-q"]) == 1  # fmt: skip
    assert "already holds a model" in capsys.readouterr().err
    assert run_cli(["scalable", "tune-decoder", "--network", str(source), "--output", str(tmp_path / "again"),
                    "--kimg", "8", "--lr", "0.01", "--batch", "64", "-q"]) == 0  # fmt: skip
    again = ScalableNetwork.from_pretrained(tmp_path / "again")
    assert all(torch.equal(v, again.F.state_dict()[k]) for k, v in tuned.F.state_dict().items())
    assert run_cli(["scalable", "export", "--network", str(source), "--fingerprint", "0" * 16,
                    "--output", str(tmp_path / "exported")]) == 0  # fmt: skip
    capsys.readouterr()
    assert run_cli(["scalable", "tune-decoder", "--network", str(tmp_path / "exported"), "--output",
                    str(tmp_path / "x"), "-q"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "needs a full network" in err and len(err.splitlines()) == 1


def test_detect_writes_the_codec_detect_files(tiny_net, tmp_path):
    from ganprint.scalable.detect import detect

    generate_images(tiny_net, list(range(12)), tmp_path / "gen", progress=False)
    summary = detect(tiny_net, tmp_path / "gen", tmp_path / "det", expected=tmp_path / "gen", progress=False)
    detected = read_fingerprint_file(tmp_path / "det" / "detected_fingerprints.txt")
    assert sorted(detected) == [f"seed{i:04d}.png" for i in range(12)]
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(tmp_path / "gen" / n)).copy()).permute(2, 0, 1)
                          for n in sorted(detected)]).float() / 255  # fmt: skip
    logits = tiny_net.F(from_unit(images))[1]
    for name, row in zip(sorted(detected), logits):
        assert torch.equal(detected[name], (row > 0).float())
    with open(tmp_path / "det" / "detection_report.csv", newline="") as f:
        report = list(csv.DictReader(f))
    assert [r["name"] for r in report] == sorted(detected)
    assert {"bit_accuracy", "p_value", "neg_log10_p", "detected"} <= report[0].keys()
    # an untrained decoder reads chance: 12 x 16 bits, so well inside 0.5 +- 0.2
    assert abs(summary.mean_bit_accuracy - 0.5) < 0.2 and summary.detected == 0


def test_straight_through_quantization_rounds_forward_and_passes_gradients_inside_the_range():
    x = (torch.rand(2, 3, 4, 4) * 2.4 - 1.2).requires_grad_()  # some values outside [-1, 1]
    y = quantize_straight_through(x)
    assert torch.equal(y.detach(), from_unit(quantize_unit((x.detach() + 1) / 2)))
    levels = (y.detach() + 1) / 2 * 255
    assert (levels - levels.round()).abs().max() < 1e-4
    weights = torch.arange(y.numel()).view_as(y).float()
    (y * weights).sum().backward()
    inside = x.detach().abs() <= 1
    assert 0 < inside.sum() < x.numel()
    assert torch.equal(x.grad[inside], weights[inside])  # rounding: straight through
    assert torch.equal(x.grad[~inside], torch.zeros_like(x.grad[~inside]))  # clamp: no push further out


def test_random_decoder_reads_chance(tiny_net):
    from ganprint.scalable.metrics import compute_metrics

    result = compute_metrics(tiny_net, 256, batch_size=64, seed=1)
    assert abs(result.bit_accuracy - 0.5) < 0.05  # 4096 bits: 0.05 is > 6 standard deviations
    assert abs(result.bit_accuracy_uint8 - 0.5) < 0.05
    assert result.fid is None


def test_metrics_bit_accuracy_and_fid_against_direct_computation(tiny_net, blobs):
    from ganprint.fid import StandInFeatureNetwork, extract_features, frechet_distance, real_image_batches, to_uint8
    from ganprint.scalable.metrics import compute_metrics

    feature_net = StandInFeatureNetwork(0)
    result = compute_metrics(tiny_net, 20, str(blobs), feature_net, batch_size=8, seed=3)
    g = torch.Generator().manual_seed(3)
    zs, cs = [], []
    for n in (8, 8, 4):  # batch by batch: z then c
        zs.append(torch.randn(n, 8, generator=g))
        cs.append(torch.randint(0, 2, (n, 16), generator=g).float())
    z, c = torch.cat(zs), torch.cat(cs)
    with torch.no_grad():
        raw = tiny_net.G(z, c)
        images = ((raw + 1) / 2).clamp(0, 1)
        acc = ((tiny_net.F(raw)[1] > 0).float() == c).double().mean().item()
        right8 = ((tiny_net.F(from_unit(quantize_unit(images)))[1] > 0).float() == c).double()
    acc8, per_bit8 = right8.mean().item(), right8.mean(0)
    assert result.bit_accuracy == pytest.approx(acc, abs=1e-9)
    assert result.bit_accuracy_uint8 == pytest.approx(acc8, abs=1e-9)
    assert result.worst_bit_uint8 == pytest.approx(per_bit8.min().item(), abs=1e-6) and result.worst_bit_uint8 < acc8
    assert result.p10_bit_uint8 == pytest.approx(per_bit8.quantile(0.1).item(), abs=1e-6)
    fake = extract_features(feature_net, [to_uint8(images)])
    real = extract_features(feature_net, real_image_batches(str(blobs), 20, 16, batch_size=8, seed=3))
    assert result.fid == pytest.approx(frechet_distance(fake, real), rel=1e-6)
    assert result.feature_network == "stand-in:0"


def test_latent_share_tells_whether_z_or_the_code_decides_the_images(tiny_net):
    from ganprint.scalable.metrics import compute_metrics, latent_share

    pattern = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(0))
    # images that z alone makes, that the code alone makes, and both equally (orthogonal halves)
    z_only = lambda z, c: z[:, :1, None, None] * pattern  # noqa: E731
    c_only = lambda z, c: (c[:, :1, None, None] * 2 - 1) * pattern  # noqa: E731
    both = lambda z, c: torch.cat([z[:, :1, None, None] * pattern, (c[:, :1, None, None] * 2 - 1) * pattern], 1)  # noqa: E731
    assert latent_share(z_only, 8, 16) == pytest.approx(1.0)
    assert latent_share(c_only, 8, 16) == pytest.approx(0.0, abs=1e-9)
    assert 0.25 < latent_share(both, 8, 16, count=32) < 0.75  # var z ~1, var of a +-1 coin ~1
    # a random network's code enters every layer's styles: neither extreme, and seeded
    share = compute_metrics(tiny_net, 8, seed=1).latent_share
    assert 0 < share < 1 and share == compute_metrics(tiny_net, 8, seed=1).latent_share


# ----------------------------------------------------------------------------- bad input (CLI)


def test_cli_generate_detect_round_trip(tiny_net, tmp_path, capsys):
    tiny_net.save_pretrained(tmp_path / "net")
    assert run_cli(["scalable", "generate", "--network", str(tmp_path / "net"), "--seeds", "0-3",
                    "--identical-watermark=True", "--output-dir", str(tmp_path / "gen"), "-q"]) == 0  # fmt: skip
    assert len(list((tmp_path / "gen").glob("seed*.png"))) == 4
    assert run_cli(["scalable", "detect", "--network", str(tmp_path / "net"), "--data_dir", str(tmp_path / "gen"),
                    "--output_dir", str(tmp_path / "det"), "--expected", str(tmp_path / "gen"), "--json", "-q"]) == 0  # fmt: skip
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["images"] == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--seeds", "1-x"], "cannot read"),
        (["generate", "--seeds", "0-3", "--fingerprint", "010"], "fingerprint"),
        (["generate", "--seeds", "0-3", "--fingerprint", "0xg1234"], "neither"),
        (["export", "--fingerprint", "01" * 20], "fingerprint"),
    ],
)
def test_cli_bad_arguments_are_one_line_errors(tiny_net, tmp_path, capsys, args, message):
    tiny_net.save_pretrained(tmp_path / "net")
    extra = ["--output-dir", str(tmp_path / "out")] if args[0] == "generate" else ["--output", str(tmp_path / "out")]
    code = run_cli(["scalable", *args, "--network", str(tmp_path / "net"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_network_of_another_kind(tiny_codec, tmp_path, capsys):
    tiny_codec.save_pretrained(tmp_path / "codec")
    (tmp_path / "network.pkl").write_bytes(b"\x80\x04K\x01.")
    (tmp_path / "empty").mkdir()
    for network, message in ((tmp_path / "codec", "ganprint.codec model, not a scalable fingerprinting network"),
                             (tmp_path / "network.pkl", "does not load"), (tmp_path / "empty", "neither a model folder"),
                             (tmp_path / "missing", "no such model folder")):  # fmt: skip
        for command in (["generate", "--output-dir", str(tmp_path / "o")], ["detect", "--data-dir", str(tmp_path),
                        "--output-dir", str(tmp_path / "o")], ["export", "--fingerprint", "random", "--output", str(tmp_path / "o")]):  # fmt: skip
            code = run_cli(["scalable", command[0], "--network", str(network), *command[1:]])
            err = capsys.readouterr().err.strip()
            assert code == 1 and message in err and len(err.splitlines()) == 1, (network, command, err)
    assert not (tmp_path / "o").exists()


def _train_cli(data, out, *extra):
    return ["scalable", "train", "--data", str(data), "--output-dir", str(out), "--batch", "4", "--total-kimg",
            "0.008", "-q", *extra]  # fmt: skip


def _bad_dataset(kind, root):
    if kind == "mixed-sizes":
        folder = _blob_images(root / "mixed", count=4)
        Image.new("RGB", (20, 16)).save(folder / "002.png")
        return folder
    if kind == "empty":
        (root / "empty").mkdir()
        return root / "empty"
    if kind == "corrupt-zip":
        (root / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
        return root / "bad.zip"
    if kind == "unreadable":
        folder = root / "unreadable"
        folder.mkdir()
        for i in range(3):
            (folder / f"{i}.png").write_bytes(b"\x89PNG broken")
        return folder
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [("mixed-sizes", "20x16, but the dataset's images are 16x16"),
                                           ("empty", "no images found"), ("corrupt-zip", "not a readable zip"),
                                           ("unreadable", "none of the 3 images could be read")])  # fmt: skip
def test_bad_datasets(kind, message, tmp_path):
    data = _bad_dataset(kind, tmp_path)
    with pytest.raises(GanprintError, match=message):
        train_scalable(options(data, tmp_path / "runs", batch_size=4, total_kimg=0.004))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no stray run folder


def test_cli_bad_dataset_is_a_one_line_error(tmp_path, capsys):
    data = _bad_dataset("mixed-sizes", tmp_path)
    code = run_cli(_train_cli(data, tmp_path / "runs"))
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and "20x16" in err and len(err.splitlines()) == 1


def test_resume_refuses_another_configuration(blobs, tmp_path, capsys):
    run = train_scalable(options(blobs, tmp_path, total_kimg=0.008))
    checkpoint_before = (run / "checkpoint.pt").read_bytes()
    # an explicit option that changes the training
    code = run_cli(["scalable", "train", "--resume", str(run), "--watermark-size", "32", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "fingerprint-size 16, not 32" in err and len(err.splitlines()) == 1
    # a checkpoint from another configuration
    other = train_scalable(options(blobs, tmp_path / "other", total_kimg=0.008, network=dict(TINY_NET, z_dim=4)))
    check_resume_refuses_the_checkpoint_of(other, run, train_scalable, load_run_options)
    # a codec run folder
    (tmp_path / "codec-run").mkdir()
    (tmp_path / "codec-run" / "options.json").write_text(json.dumps({"data_dir": "x", "arch": "ganprint"}))
    code = run_cli(["scalable", "train", "--resume", str(tmp_path / "codec-run"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "not a scalable fingerprinting run" in err
    # a truncated checkpoint
    (run / "checkpoint.pt").write_bytes(checkpoint_before[:100])
    with pytest.raises(GanprintError, match="not a readable training checkpoint"):
        train_scalable(load_run_options(run), resume=run)


def test_config_errors():
    with pytest.raises(GanprintError, match="res-modulated-range 8-64"):
        ScalableConfig(**dict(TINY_NET, res_modulated_range=(8, 64))).validate()
    with pytest.raises(GanprintError, match="expected two resolutions"):
        TrainOptions(data="x", res_modulated_range="4to32").resolved()
    with pytest.raises(GanprintError, match="unknown preset"):
        TrainOptions(data="x", preset="gpu9").resolved()


def test_cached_training_images_are_the_decoded_ones_and_read_once(tmp_path, monkeypatch):
    folder = _blob_images(tmp_path / "imgs", count=6)
    (folder / "003.png").write_bytes(b"broken")  # skipped: the next image takes its place
    source = open_source(folder)
    plain = [UniformImages(source, 16, (16, 16))[i] for i in range(6)]
    cached = UniformImages(source, 16, (16, 16), cache=True)
    reads = []
    monkeypatch.setattr(source, "image", lambda k, read=source.image: reads.append(k) or read(k))
    first = [cached[i] for i in range(6)]
    again = [cached[i] for i in range(6)]
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(plain, first, again))
    assert torch.equal(first[3], first[4])
    assert sorted(reads) == [0, 1, 2, 3, 4, 5]  # each file decoded once (the broken one tried once)
    monkeypatch.setattr("ganprint.scalable.training_data.CACHE_LIMIT_BYTES", 6 * 3 * 16 * 16 - 1)
    assert UniformImages(source, 16, (16, 16), cache=True)._cache is None  # too large: read every time


def test_zip_dataset_trains(tmp_path):
    folder = _blob_images(tmp_path / "imgs", count=8)
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)
    run = train_scalable(options(tmp_path / "data.zip", tmp_path / "runs", total_kimg=0.008))
    assert (run / "reals.png").is_file()


def test_random_noise_follows_the_seed(tiny_net, tmp_path):
    import copy

    net = copy.deepcopy(tiny_net)
    with torch.no_grad():  # untrained noise strengths are 0: give the noise an effect
        for name, p in net.G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    for folder in ("a", "b"):
        generate_images(net, [4, 9], tmp_path / folder, noise_mode="random", progress=False)
    generate_images(net, [4, 9], tmp_path / "const", progress=False)
    a, b, const = (np.asarray(Image.open(tmp_path / f / "seed0009.png")) for f in ("a", "b", "const"))
    assert np.array_equal(a, b) and not np.array_equal(a, const)
    # the noise is drawn after z and c, so the record (z, c) is the same as without noise
    assert _read_record(tmp_path / "a") == _read_record(tmp_path / "const")


def test_cli_metrics(tiny_net, blobs, tmp_path, capsys):
    from ganprint.fid import default_weights_path

    tiny_net.save_pretrained(tmp_path / "net")
    args = ["scalable", "metrics", "--network", str(tmp_path / "net"), "--data", str(blobs), "--num-images", "16",
            "--batch-size", "8", "-q"]  # fmt: skip
    assert run_cli([*args, "--fid-weights", "stand-in", "--json", "--output", str(tmp_path / "m.json")]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record == json.loads((tmp_path / "m.json").read_text())
    assert record["fid"] > 0 and record["feature_network"] == "stand-in:0" and 0 <= record["bit_accuracy"] <= 1
    # the output is never overwritten
    assert run_cli([*args, "--fid-weights", "stand-in", "--output", str(tmp_path / "m.json")]) == 1
    assert "already exists" in capsys.readouterr().err
    if not default_weights_path().is_file():  # without Inception weights: say how to supply them
        assert run_cli(args) == 1
        err = capsys.readouterr().err.strip()
        assert "--fid-weights" in err and "pt_inception" in err and len(err.splitlines()) == 1


def test_paired_code_loss_sees_only_the_code():
    from ganprint.scalable.train import paired_code_loss

    g = torch.Generator().manual_seed(0)
    c, c2 = torch.randint(0, 2, (2, 4, 16), generator=g).float()
    code = (c - c2) * 3  # logits that follow the code where the codes differ
    content = torch.randn(4, 16, generator=g) * 10  # what F reads from the shared content: cancels
    good = paired_code_loss(content + code, content, c, c2)
    assert float(good) == pytest.approx(float(paired_code_loss(code, torch.zeros_like(code), c, c2)), abs=1e-5)
    assert float(good) < 0.1 < float(paired_code_loss(content - code, content, c, c2))
    same = paired_code_loss(torch.randn(4, 16, generator=g), torch.zeros(4, 16), c, c)  # no bit differs: no loss
    assert float(same) == 0.0


def test_paired_code_weight_trains_f_and_needs_both_codes(blobs, tmp_path, capsys):
    # one step: F learns from it, G gets exactly the gradients it gets without it
    one_step = dict(decode_both=True, total_kimg=0.004, metrics_kimg=0, snapshot_kimg=0)
    plain = checkpoint_tensors(train_scalable(options(blobs, tmp_path / "plain", **one_step)))[0]
    f_only = checkpoint_tensors(train_scalable(options(blobs, tmp_path / "f", **one_step, paired_code_weight=10.0)))[0]
    assert all(torch.equal(plain[k], f_only[k]) for k in plain if k.startswith(("G.", "G_ema.", "D.")))
    assert any(not torch.equal(plain[k], f_only[k]) for k in plain if k.startswith("F."))
    paired_run = train_scalable(options(blobs, tmp_path / "paired", decode_both=True, paired_code_weight=10.0))
    stats = [json.loads(line) for line in (paired_run / "stats.jsonl").read_text().splitlines()]
    values = [s["loss/paired_code"] for s in stats if "loss/paired_code" in s]
    assert values and all(0 < v < 10 for v in values)
    code = run_cli(["scalable", "train", "--data", str(blobs), "--output-dir", str(tmp_path / "bad"),
                    "--paired-code-weight", "1", "--decode-both", "false", "--total-kimg", "0.004", "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and "needs --decode-both true" in err and len(err.splitlines()) == 1
    # only for the first 0.008 kimg (2 steps of 4 images): the first stats line has it, the later ones not
    early = train_scalable(options(blobs, tmp_path / "early", decode_both=True, paired_code_weight=10.0,
                                   paired_code_kimg=0.008))  # fmt: skip
    stats = [json.loads(line) for line in (early / "stats.jsonl").read_text().splitlines()]
    ticks = [s for s in stats if "loss/c_reconstruction" in s]
    assert "loss/paired_code" in ticks[0] and not any("loss/paired_code" in s for s in ticks[1:]) and len(ticks) >= 3
    code = run_cli(["scalable", "train", "--data", str(blobs), "--output-dir", str(tmp_path / "bad2"),
                    "--paired-code-kimg", "5", "--total-kimg", "0.004", "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and "needs --paired-code-weight" in err and len(err.splitlines()) == 1
