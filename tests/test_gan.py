import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import check_resume_refuses_the_checkpoint_of, check_resume_reproduces_an_uninterrupted_run
from helpers import check_run_folder, check_seed_decides_the_run, check_two_processes_equal_one, checkpoint_tensors
from helpers import tiny_run_options
from helpers import cli_exit_code as run_cli

from ganprint.errors import GanprintError
from ganprint.gan.generate import draw, generate_images
from ganprint.gan.network import PRESETS, GanConfig, GanNetwork
from ganprint.cli.gan import gan as gan_cli
from ganprint.gan.train import PRECISIONS, GanTrainOptions, load_run_options, train_gan
from ganprint.scalable.network import quantize_unit
from ganprint.stylegan.training import discriminator_loss, ema_beta, lazy_adam

TINY = dict(resolution=16, z_dim=8, w_dim=16, g_channels=[16, 16, 8], d_channels=[16, 16, 8], mapping_layers=2,
            mbstd_group=2)  # fmt: skip


def stripes(folder, count=20, size=16):
    """Vertical stripes of random colour and period: a small learnable dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        period = int(rng.integers(2, 6))
        row = (np.arange(size) // period) % 2
        a = (row[None, :, None] * rng.integers(80, 255, 3)[None, None, :]).repeat(size, 0).astype(np.uint8)
        Image.fromarray(a).save(folder / f"s{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return stripes(tmp_path_factory.mktemp("stripes") / "imgs")


def opts(data, out, **kw):
    return tiny_run_options(GanTrainOptions, data, out, TINY, **kw)


@pytest.fixture(scope="module")
def tiny_gan():
    torch.manual_seed(0)
    return GanNetwork(GanConfig(**TINY)).eval()


# ----------------------------------------------------------------------------- training


def test_run_folder_contents(data, tmp_path):
    run = train_gan(opts(data, tmp_path))
    assert run.name == "00000-gan-cpu32-16px"
    saved, net = check_run_folder(run, "ganprint.gan.train", ["fakes"], GanNetwork)
    assert saved["gamma"] == PRESETS["cpu32"].training.gamma and saved["network"]["z_dim"] == 8
    lines = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6]
    assert {"loss/G", "loss/D", "loss/r1", "scores/real", "speed/images_per_second"} <= set(lines[-1])
    # the snapshot (the EMA generator) is an unconditional network: z through the mapping, a constant
    assert net.G.z_through_mapping and not net.G.takes_c
    config = json.loads((run / "network-snapshot-000000" / "config.json").read_text())
    assert config["kind"] == "ganprint.gan" and config["training"]["kimg"] == pytest.approx(0.024)


def test_resume_reproduces_an_uninterrupted_run(data, tmp_path):
    check_resume_reproduces_an_uninterrupted_run(train_gan, load_run_options, lambda out: opts(data, out), tmp_path)


def test_carrier_maps_resume_exactly_and_older_runs_resume_without(data, tmp_path):
    check_resume_reproduces_an_uninterrupted_run(
        train_gan, load_run_options, lambda out: opts(data, out, network={**TINY, "carrier_std": 1.0}), tmp_path / "c"
    )
    run = next((tmp_path / "c" / "a").iterdir())
    net = GanNetwork.from_pretrained(sorted(run.glob("network-snapshot-*"))[-1])
    carriers = [m.carrier for m in net.G.modules() if getattr(m, "carrier", None) is not None]
    assert carriers and all(c.abs().sum() > 0 for c in carriers)
    # a run made before carrier maps existed has none in options.json: it resumes without them
    saved = json.loads((run / "options.json").read_text())
    del saved["network"]["carrier_std"]
    (run / "options.json").write_text(json.dumps(saved))
    assert load_run_options(run).resolved().network["carrier_std"] == 0.0


def test_seed_decides_the_run(data, tmp_path):
    check_seed_decides_the_run(train_gan, lambda seed: opts(data, tmp_path, total_kimg=0.008, seed=seed))


def test_shared_discriminator_pass_equals_two_passes(data, tmp_path):
    # One process shares D's pass over the fakes between G's and D's losses (steps 1 and 3; step 2 has
    # R1); under torchrun each loss has its own pass. Both must train the same networks.
    check_two_processes_equal_one(train_gan, lambda out: opts(data, out, total_kimg=0.012, snapshot_kimg=0), tmp_path,
                                 steps=3)


def test_channels_last_layout_trains_the_same_networks(data, tmp_path):
    # NHWC is the CPU default for speed; it must change only the memory layout, not what is learned.
    nhwc = train_gan(opts(data, tmp_path / "nhwc", total_kimg=0.012))
    nchw = train_gan(opts(data, tmp_path / "nchw", total_kimg=0.012, channels_last=False))
    conv = "blocks.1.conv0.weight"
    saved = {run: torch.load(run / "checkpoint.pt", weights_only=True)["G"][conv] for run in (nhwc, nchw)}
    assert saved[nhwc].is_contiguous(memory_format=torch.channels_last) and not saved[nhwc].is_contiguous()
    assert saved[nchw].is_contiguous()
    a, b = checkpoint_tensors(nhwc)[0], checkpoint_tensors(nchw)[0]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_r1_and_optimizer_settings_against_closed_forms():
    # D(x) = sum(w * x): grad_x D = w for every image, so R1 = |w|^2 exactly.
    w = torch.randn(1, 3, 4, 4)
    D = lambda x: (x * w).sum(dim=(1, 2, 3))  # noqa: E731
    reals, fakes = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    out = discriminator_loss(D, reals, fakes, r1_gamma=1.0)  # weight gamma / 2
    real, fake = D(reals), D(fakes)
    logistic = torch.nn.functional.softplus(fake).mean() + torch.nn.functional.softplus(-real).mean()
    torch.testing.assert_close(out["loss/r1"], w.square().sum())
    torch.testing.assert_close(out["loss/D"], logistic + 0.5 * w.square().sum())
    torch.testing.assert_close(out["scores/real"], real.mean())
    # lazy: every 4 steps, weighted by 4
    torch.testing.assert_close(discriminator_loss(D, reals, fakes, 1.0, 4)["loss/D"], logistic + 2 * w.square().sum())
    assert "loss/r1" not in discriminator_loss(D, reals, fakes)
    # lazy regularisation: lr * 16/17, beta2 = 0.99 ** (16/17); none: unchanged
    group = lazy_adam([torch.nn.Parameter(torch.zeros(1))], 0.002, 16).param_groups[0]
    assert group["lr"] == pytest.approx(0.002 * 16 / 17) and group["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    assert lazy_adam([torch.nn.Parameter(torch.zeros(1))], 0.002, 0).param_groups[0]["betas"] == (0.0, 0.99)
    # EMA: half-life 5 kimg at batch 16 -> beta^(5000/16) = 1/2; ramp-up caps it at 5% of the images seen
    assert ema_beta(16, 10**6, 5.0, None) ** (5000 / 16) == pytest.approx(0.5)
    assert ema_beta(16, 1000, 5.0, 0.05) ** (50 / 16) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- generation


def test_generate_record_and_images(tiny_gan, tmp_path):
    summary = generate_images(tiny_gan, [3, 0, 7], tmp_path / "out", batch_size=2, progress=False)
    assert summary.images == 3
    with open(tmp_path / "out" / "generated_images.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], int(r["seed"])) for r in rows] == [("seed0003.png", 3), ("seed0000.png", 0), ("seed0007.png", 7)]
    record = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert record["network_kind"] == "ganprint.gan" and record["seeds"] == 3
    # seed 7's image is G(z of seed 7), z drawn from torch.Generator().manual_seed(7)
    z = torch.randn(8, generator=torch.Generator().manual_seed(7))
    assert torch.equal(draw(tiny_gan, 7)[0], z)
    expected = (quantize_unit(tiny_gan.generate(z[None]))[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    with Image.open(tmp_path / "out" / "seed0007.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), expected)
    # with noise in use (untrained strengths are 0), random noise maps change the image of a seed
    noisy = GanNetwork(tiny_gan.config).eval()
    noisy.load_state_dict(tiny_gan.state_dict())
    for name, p in noisy.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.5)
    generate_images(noisy, [7], tmp_path / "const", progress=False)
    generate_images(noisy, [7], tmp_path / "rnd", noise_mode="random", progress=False)
    with Image.open(tmp_path / "const" / "seed0007.png") as a, Image.open(tmp_path / "rnd" / "seed0007.png") as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    # refusing to overwrite
    with pytest.raises(GanprintError, match="already exists"):
        generate_images(tiny_gan, [0], tmp_path / "out", progress=False)


def test_cli_train_then_generate(data, tmp_path, capsys):
    code = run_cli(["gan", "train", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--batch", "4",
                    "--total-kimg", "0.008", "--snapshot-kimg", "0", "--device", "cpu", "-q"])  # fmt: skip
    assert code == 0
    (run,) = (tmp_path / "runs").iterdir()
    code = run_cli(["gan", "generate", "--network", str(run), "--seeds", "0-4", "--output-dir", str(tmp_path / "g"), "-q"])
    assert code == 0 and len(list((tmp_path / "g").glob("seed*.png"))) == 5
    assert "generated 5 images" in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad inputs


def test_empty_dataset(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanprintError, match="no images found"):
        train_gan(opts(tmp_path / "empty", tmp_path / "runs"))
    code = run_cli(["gan", "train", "--data", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "runs"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and "no images found" in err and len(err.splitlines()) == 1


def test_network_of_another_kind(tiny_codec, tmp_path, capsys):
    tiny_codec.save_pretrained(tmp_path / "codec")
    with pytest.raises(GanprintError, match="a ganprint.codec model, not an unconditional GAN"):
        GanNetwork.from_pretrained(tmp_path / "codec")
    code = run_cli(["gan", "generate", "--network", str(tmp_path / "codec"), "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "not an unconditional GAN" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_resume_refuses_another_configuration(data, tmp_path, capsys):
    run = train_gan(opts(data, tmp_path, total_kimg=0.008))
    # a training option given again with another value
    code = run_cli(["gan", "train", "--resume", str(run), "--seed", "5", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "seed 0, not 5" in err and len(err.splitlines()) == 1
    # a checkpoint of another network configuration
    other = train_gan(opts(data, tmp_path / "other", total_kimg=0.008, network=dict(TINY, z_dim=4)))
    check_resume_refuses_the_checkpoint_of(other, run, train_gan, load_run_options)
    # a run folder of another trainer
    (tmp_path / "scalable-run").mkdir()
    (tmp_path / "scalable-run" / "options.json").write_text(json.dumps({"kind": "ganprint.scalable.train"}))
    with pytest.raises(GanprintError, match="not an unconditional GAN run"):
        load_run_options(tmp_path / "scalable-run")


def test_bad_network_options(data, tmp_path):
    with pytest.raises(GanprintError, match="bad GAN network configuration"):
        train_gan(opts(data, tmp_path, network=dict(TINY, g_channels=[16, 8])))
    with pytest.raises(GanprintError, match="unknown GAN preset"):
        train_gan(opts(data, tmp_path, preset="paper128"))


def test_bf16_precision_trains_close_to_fp32_and_bad_precisions_are_refused(data, tmp_path):
    def final_weights(precision):
        run = train_gan(opts(data, tmp_path / precision, total_kimg=0.032, precision=precision))
        assert json.loads((run / "options.json").read_text())["precision"] == precision
        snapshot = sorted(run.glob("network-snapshot-*"))[-1]
        return torch.cat([p.flatten() for p in GanNetwork.from_pretrained(snapshot).parameters()])

    fp32, bf16 = final_weights("fp32"), final_weights("bf16")
    assert torch.isfinite(bf16).all()
    change = (bf16 - fp32).norm() / fp32.norm()
    assert 0 < change < 0.05, change  # autocast ran (not bit-identical) and the runs stayed together
    with pytest.raises(GanprintError, match="precision must be one of fp32, bf16"):
        train_gan(opts(data, tmp_path / "x", precision="fp16"))
    # The CLI lists the precisions itself (so that it starts without importing the trainer).
    option = next(p for p in gan_cli.commands["train"].params if p.name == "precision")
    assert tuple(option.type.choices) == PRECISIONS
