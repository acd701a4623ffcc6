"""Differentiable perturbations for immunized training, and their place in the codec trainer."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ganprint.augment import DEFAULT_SET, PERTURBATIONS, Augmenter
from ganprint.cli import main
from ganprint.codec.train import CodecTrainOptions, train_codec
from ganprint.errors import GanprintError


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    return (0.6 * torch.stack([xx, yy, 1 - xx]) + 0.4 * torch.rand(8, 3, 32, 32, generator=g)).clamp(0, 1)


def _one(aug: Augmenter, name: str, images: torch.Tensor, share: float) -> torch.Tensor:
    n = images.shape[0]
    g = torch.Generator().manual_seed(1)
    return aug.apply(images, torch.full((n,), aug.names.index(name)), torch.full((n,), share),
                     torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0), torch.rand(n, 2, generator=g),
                     torch.randn(images.shape, generator=g))  # fmt: skip


def test_spec_parsing():
    assert Augmenter.from_spec("default").names == list(DEFAULT_SET)
    aug = Augmenter.from_spec("noise=0.1, jpeg ,crop=0.15", ramp_steps=50)
    assert aug.maxima == {"noise": 0.1, "jpeg": PERTURBATIONS["jpeg"].maximum, "crop": 0.15}
    assert aug.ramp(0) == 0 and aug.ramp(25) == 0.5 and aug.ramp(500) == 1
    assert Augmenter.from_spec("default,noise=0.2").maxima["noise"] == 0.2
    assert Augmenter.from_spec("noise", ramp_steps=0).ramp(0) == 1


def test_weights_set_how_often_each_perturbation_is_drawn():
    aug = Augmenter.from_spec("jpeg=40@3,noise,blur@0.5")
    assert aug.weights == {"jpeg": 3.0, "noise": 1.0, "blur": 0.5} and aug.maxima["jpeg"] == 40
    assert aug.spec() == "jpeg=40@3,noise=0.08,blur=1.5@0.5"
    assert Augmenter.from_spec(aug.spec()).weights == aug.weights  # the saved spec rebuilds it
    counts = torch.bincount(aug._choose(55_000, torch.Generator().manual_seed(0)), minlength=4) / 55_000
    torch.testing.assert_close(counts, torch.tensor([3, 1, 0.5, 1]) / 5.5, atol=0.01, rtol=0)  # last: none
    # unweighted specs draw exactly as before weights existed (runs resume and reproduce)
    plain = Augmenter.from_spec("jpeg,noise")._choose(64, torch.Generator().manual_seed(1))
    assert torch.equal(plain, torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    "spec, words",
    [("noize", "unknown perturbation 'noize'"), ("noise=abc", "not a number"), ("crop=0.95", r"\(0, 0.9\]"),
     ("noise=0", "must be in"), ("", "no perturbations"), ("jpeg@0", r"weight must be in \(0, 100\]"),
     ("jpeg=40@x", "weight is not a number"), ("default@2", "not to default"), ("jpeg@nan", "weight must be")],
)  # fmt: skip
def test_bad_specs(spec, words):
    with pytest.raises(GanprintError, match=words):
        Augmenter.from_spec(spec)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_each_perturbation_is_identity_at_zero_and_differentiable_at_full(images, name):
    aug = Augmenter({name: PERTURBATIONS[name].maximum}, ramp_steps=10)
    torch.testing.assert_close(aug(images, 0, torch.Generator().manual_seed(0)), images, atol=2e-5, rtol=0)
    if name != "jpeg":  # JPEG at quality 100 still subsamples colour: only the ramp makes it vanish
        torch.testing.assert_close(_one(aug, name, images, 0.0), images, atol=2e-5, rtol=0)
    x = images.clone().requires_grad_(True)
    out = _one(aug, name, x, 1.0)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert (out - images).abs().mean() > 0.005
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_strength_ramps_in_and_draws_are_reproducible(images):
    aug = Augmenter.from_spec("default", ramp_steps=100)
    assert torch.equal(aug(images, 0, torch.Generator().manual_seed(0)), images)  # ramp 0: nothing yet
    change = []
    for step in (10, 50, 100):
        a = aug(images, step, torch.Generator().manual_seed(3))
        assert torch.equal(a, aug(images, step, torch.Generator().manual_seed(3)))
        change.append((a - images).abs().mean().item())
    assert change == sorted(change) and change[0] > 0
    assert not torch.equal(aug(images, 100, torch.Generator().manual_seed(4)), aug(images, 100, torch.Generator().manual_seed(3)))


def test_a_part_of_the_batch_gets_its_slice_of_the_whole_batch_draws(images):
    aug = Augmenter.from_spec("default", ramp_steps=0)
    whole = aug(images, 5, torch.Generator().manual_seed(7))
    part = aug(images[3:6], 5, torch.Generator().manual_seed(7), batch_size=8, part=slice(3, 6))
    torch.testing.assert_close(part, whole[3:6])


def test_full_strength_perturbs_every_image(images):
    aug = Augmenter.from_spec("noise,blur")
    out = aug.full_strength(images, torch.Generator().manual_seed(0))
    assert ((out - images).abs().flatten(1).mean(1) > 0.005).all()


# ---------------------------------------------------------------------------------------- trainer
@pytest.fixture(scope="module")
def photo_folder(photo_crops):
    return photo_crops(24)


def _options(data, out, **kw):
    base = dict(data_dir=str(data), output_dir=str(out), fingerprint_length=16, channels=8, batch_size=8, steps=8,
                eval_every=4, snapshot_every=4, progress=False, augment="default", augment_ramp=4)  # fmt: skip
    base.update(kw)
    return CodecTrainOptions(**base)


def test_immunized_training_resumes_exactly_and_logs_augmented_accuracy(photo_folder, tmp_path):
    full = train_codec(_options(photo_folder, tmp_path / "a"))
    half = train_codec(_options(photo_folder, tmp_path / "b", steps=4))
    resumed = train_codec(_options(photo_folder, tmp_path / "b"), resume=half)
    a, b = load_file(str(full / "final" / "model.safetensors")), load_file(str(resumed / "final" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    stats = [json.loads(line) for line in (full / "stats.jsonl").read_text().splitlines()]
    assert "val/bit_accuracy_augmented" in stats[-1] and stats[-1]["schedule/augment_ramp"] == 1.0
    assert json.loads((full / "options.json").read_text())["augment"] == "default"
    plain = train_codec(_options(photo_folder, tmp_path / "c", augment=None))
    c = load_file(str(plain / "final" / "model.safetensors"))
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the perturbations do reach the training


def test_cli_train_takes_augment_and_refuses_bad_specs(photo_folder, tmp_path, capsys):
    args = ["codec", "train", "--data_dir", str(photo_folder), "--output_dir", str(tmp_path), "--channels", "8",
            "--fingerprint_length", "16", "--batch_size", "8", "--steps", "2", "-q", "--device", "cpu"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main([*args, "--augment", "noise,sharpen"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "error: --augment: unknown perturbation 'sharpen'" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # refused before a run folder was made
    main([*args, "--augment", "noise=0.1,jpeg", "--augment-ramp", "10"])
    run = next(tmp_path.iterdir())
    saved = json.loads((run / "options.json").read_text())
    assert saved["augment"] == "noise=0.1,jpeg" and saved["augment_ramp"] == 10
