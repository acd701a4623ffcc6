import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ganprint.codec.schedule import FidelitySchedule
from ganprint.codec.train import CodecTrainOptions, train_codec
from ganprint.data import split_indices
from ganprint.errors import GanprintError


@pytest.fixture(scope="module")
def photo_folder(photo_crops):
    """48 small natural-looking images: crops of the built-in photos."""
    return photo_crops(48)


def options(data, out, **kw):
    base = dict(
        data_dir=str(data), output_dir=str(out), fingerprint_length=16, channels=8, batch_size=8,
        steps=8, eval_every=4, snapshot_every=4, progress=False,
    )  # fmt: skip
    base.update(kw)
    return CodecTrainOptions(**base)


def final_weights(run):
    return load_file(str(run / "final" / "model.safetensors"))


def test_resume_reproduces_an_uninterrupted_run(photo_folder, tmp_path):
    full = train_codec(options(photo_folder, tmp_path / "a", steps=8))
    half = train_codec(options(photo_folder, tmp_path / "b", steps=4))
    resumed = train_codec(options(photo_folder, tmp_path / "b", steps=8), resume=half)
    assert resumed == half
    a, b = final_weights(full), final_weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (resumed / "stats.jsonl").read_text().splitlines()]
    assert steps == [4, 8]  # no duplicated lines after the resume


def test_same_seed_same_run_other_seed_other_run(photo_folder, tmp_path):
    a = final_weights(train_codec(options(photo_folder, tmp_path, steps=3, seed=1)))
    b = final_weights(train_codec(options(photo_folder, tmp_path, steps=3, seed=1)))
    c = final_weights(train_codec(options(photo_folder, tmp_path, steps=3, seed=2)))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_run_folder_contents(photo_folder, tmp_path):
    run = train_codec(options(photo_folder, tmp_path, steps=8))
    names = {p.name for p in run.iterdir()}
    assert {"options.json", "stats.jsonl", "checkpoint.pt", "final", "snapshot-000004", "grid-000008.png"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert run.name.startswith("00000-codec-ganprint-32px-16b")
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert {"val/bit_accuracy", "val/psnr", "val/clean_bit_accuracy", "train/loss"} <= stats[-1].keys()
    # three rows (clean, fingerprinted, amplified residual) of the held-out images, padded by 2 px
    n_val = len(split_indices(48)[1])
    with Image.open(run / "grid-000008.png") as grid:
        scale = grid.width / (n_val * 34 + 2)
        assert grid.height == pytest.approx((3 * 34 + 2) * scale)


def test_resume_refuses_another_configuration(photo_folder, tmp_path):
    run = train_codec(options(photo_folder, tmp_path, steps=2))
    with pytest.raises(GanprintError, match="another configuration"):
        train_codec(options(photo_folder, tmp_path, steps=4, fingerprint_length=24), resume=run)


def test_init_starts_from_another_codecs_weights(photo_folder, tmp_path):
    first = train_codec(options(photo_folder, tmp_path / "a", steps=3))
    start = final_weights(first)
    # Another residual strength or mean handling is allowed (settings, not weights); lr ~0 keeps the
    # weights in place.
    tuned = train_codec(options(photo_folder, tmp_path / "b", steps=1, lr=1e-12, residual_rms=0.02, start_rms=0.02,
                                mean_preserving=True, init=str(first / "final")))  # fmt: skip
    fresh = train_codec(options(photo_folder, tmp_path / "c", steps=1, lr=1e-12, seed=5))
    tuned_w, fresh_w = final_weights(tuned), final_weights(fresh)
    assert all(torch.allclose(tuned_w[k], start[k], atol=1e-6) for k in start)
    assert any(not torch.allclose(fresh_w[k], start[k], atol=1e-3) for k in start)
    assert json.loads((tuned / "options.json").read_text())["init"] == str(first / "final")
    assert json.loads((tuned / "final" / "config.json").read_text())["mean_preserving"] is True
    with pytest.raises(GanprintError, match="networks differ.*channels 8 vs 16"):
        train_codec(options(photo_folder, tmp_path / "d", steps=1, channels=16, init=str(first / "final")))


def test_short_run_learns_far_above_chance(photo_folder, tmp_path):
    # A loud fixed residual isolates the decoder's learning; 16 bits, 150 steps of 16 images.
    run = train_codec(
        options(photo_folder, tmp_path, steps=150, batch_size=16, channels=16, start_rms=0.1, residual_rms=0.1,
                eval_every=150, snapshot_every=1000)
    )  # fmt: skip
    last = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert last["val/bit_accuracy"] > 0.8
    assert abs(last["val/clean_bit_accuracy"] - 0.5) < 0.25


def test_one_lucky_batch_does_not_switch_on_the_image_loss():
    s = FidelitySchedule(l2_loss_scale=10, l2_loss_await=0, l2_loss_ramp=10)
    s.update(1, 1.0)  # a single perfect batch
    assert s.image_loss_on_step < 0 and s.image_loss_weight(2) == 0
    for step in range(2, 200):
        s.update(step, 0.95)
    assert s.image_loss_on_step > 0
    assert s.image_loss_weight(s.image_loss_on_step + 10) == pytest.approx(10)


def test_anneal_steps_down_to_target_and_then_decays_lr():
    s = FidelitySchedule(start_rms=0.1, target_rms=0.02, anneal_factor=0.5)
    assert s.lr_factor(0, 100, 0.1) == 1.0
    for step in range(1, 2000):
        s.update(step, 1.0)
    assert s.rms == pytest.approx(0.02) and s.at_target
    assert s.lr_factor(1999, 2000, 0.1) < 0.2
    back = FidelitySchedule()
    back.load_state_dict(s.state_dict())
    assert back == s
