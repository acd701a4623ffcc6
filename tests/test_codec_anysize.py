"""The any-size codec's networks, verbs and trainer, on small random networks (the shipped codec-any is
tested in test_shipped.py)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganprint.codec.anysize import AnySizeConfig, FoldingDecoder, TiledEncoder, texture_mask
from ganprint.codec.anysize_codec import AnySizeCodec
from ganprint.codec.importing import is_anysize_model, load_codec
from ganprint.errors import GanprintError

SMALL = dict(channels=8, message_channels=4, fingerprint_length=24)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return AnySizeCodec(AnySizeConfig(**SMALL)).eval()


def _photo(w, h, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * 0.6 + rng.integers(0, 90, (h, w, 3))
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB").convert(mode)


@pytest.mark.parametrize("bad", [dict(tile=12), dict(tile=48), dict(working_resolution=60), dict(residual_rms=0),
                                 dict(scales=()), dict(scales=(1.0, 3.0)), dict(scales=(0.7, 1.0)),
                                 dict(min_side=100, max_side=50), dict(arch="conv", tile=64),
                                 dict(search_null=((1.0, 0.2),)), dict(flat_texture=0), dict(flat_energy_floor=0),
                                 dict(flat_energy_floor=1.5)])  # fmt: skip
def test_config_refuses_what_the_networks_cannot_do(bad):
    with pytest.raises(GanprintError):
        AnySizeConfig(**bad).validate()


def test_config_round_trips_through_json():
    config = AnySizeConfig(**SMALL, scales=(1.0, 0.7))
    again = AnySizeConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(GanprintError, match="unknown"):
        AnySizeConfig.from_dict({**config.to_dict(), "surprise": 1})


@pytest.mark.parametrize("size", [(64, 64), (97, 130), (640, 200), (1000, 64)])
def test_embed_keeps_size_and_only_adds_the_set_residual(codec, size):
    photo = _photo(*size)
    marked = codec.embed(photo, "1" * 24)
    assert marked.size == photo.size and marked.mode == "RGB"
    diff = np.asarray(marked, dtype=np.float64) - np.asarray(photo, dtype=np.float64)
    rms = np.sqrt((diff / 255) ** 2).mean()
    assert 0 < rms < 4 * codec.config.residual_rms  # a faint residual, nothing else changed


def test_embed_takes_tensors_and_lists_and_gives_back_the_same_kind(codec):
    bits = torch.randint(0, 2, (24,)).float()
    x = torch.rand(3, 80, 120)
    out = codec.embed(x, bits)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    batch = codec.embed(torch.rand(2, 3, 70, 70), bits)
    assert batch.shape == (2, 3, 70, 70)
    pils = codec.embed([_photo(90, 70), _photo(200, 100, 1)], bits)
    assert [p.size for p in pils] == [(90, 70), (200, 100)]
    logits = codec.decode_logits([_photo(90, 70), torch.rand(3, 300, 100)])
    assert logits.shape == (2, 24) and torch.isfinite(logits).all()


@pytest.mark.parametrize("size, limit", [((63, 500), "at least 64"), ((8193, 100), "at most 8192")])
def test_sizes_outside_the_limits_are_refused_with_the_limit(codec, size, limit):
    with pytest.raises(GanprintError, match=limit):
        codec.embed(Image.new("RGB", size), "0" * 24)
    with pytest.raises(GanprintError, match=limit):
        codec.decode_logits(Image.new("RGB", size))


def test_modes_come_back_as_they_went_in(codec):
    grey = _photo(100, 80, mode="L")
    assert codec.embed(grey, "1" * 24).mode == "L"
    rgba = _photo(100, 80).convert("RGBA")
    alpha = Image.fromarray(np.tile(np.arange(100, dtype=np.uint8), (80, 1)))
    rgba.putalpha(alpha)
    marked = codec.embed(rgba, "1" * 24)
    assert marked.mode == "RGBA" and np.array_equal(np.asarray(marked.getchannel("A")), np.asarray(alpha))


def test_every_shift_reads_the_folded_map_rolled():
    torch.manual_seed(1)
    decoder = FoldingDecoder(AnySizeConfig(**SMALL)).eval()
    with torch.no_grad():
        folded = decoder.fold(torch.rand(3, 3, 128, 128))
        every = decoder.read_all_shifts(folded)
        p = decoder.cells
        for sy, sx in [(0, 0), (1, 3), (3, 2)]:
            one = decoder.read(folded, torch.full((3,), sy), torch.full((3,), sx))
            assert torch.allclose(one, every[:, sy * p + sx], atol=1e-5)


@pytest.mark.parametrize("arch", ["unet", "conv"])
def test_one_pass_reads_every_moved_view_as_its_own_pass_would_away_from_the_cut(arch):
    torch.manual_seed(3)
    decoder = FoldingDecoder(AnySizeConfig(**SMALL, arch=arch)).eval()
    x = torch.rand(2, 3, 91, 76)  # odd and even sides: the last cells sit differently per move
    with torch.no_grad():
        dense = decoder.moved_features(x)
        moved = decoder.fold_moved(x, (0, 2, 4, 6))
        assert torch.allclose(moved[:, 0], decoder.fold(x), atol=1e-5)  # unmoved: exactly one pass's fold
        for i, dy in enumerate((0, 2, 4, 6)):
            for j, dx in enumerate((0, 2, 4, 6)):
                own = decoder.body(2 * x[..., dy:, dx:] - 1)
                assert own.shape[-2:] == (decoder.cells_along(91 - dy), decoder.cells_along(76 - dx))
                picked = dense[..., dy // 2 :: 4, dx // 2 :: 4][..., : own.shape[-2], : own.shape[-1]]
                # 2 cells from the cut the moved view sees zero padding, the one pass the pixels above it
                assert torch.allclose(picked[..., 2:, 2:], own[..., 2:, 2:], atol=1e-5)
                if dy and dx:
                    assert not torch.allclose(picked[..., :1, :1], own[..., :1, :1], atol=1e-5)


def test_residual_has_the_configured_rms_and_spares_flat_regions():
    torch.manual_seed(2)
    config = AnySizeConfig(**SMALL)
    encoder = TiledEncoder(config).eval()
    x = torch.full((1, 3, 128, 128), 0.5)
    x[..., 64:] += 0.2 * torch.rand(1, 3, 128, 64)  # right half textured, left half flat
    with torch.no_grad():
        r = encoder(x, torch.ones(1, 24))
    assert r.pow(2).mean().sqrt().item() == pytest.approx(config.residual_rms, rel=1e-3)
    flat, busy = r[..., 8:56].pow(2).mean().sqrt(), r[..., 72:120].pow(2).mean().sqrt()
    assert flat < 0.7 * busy
    mask = texture_mask(x, config.mask_floor)
    assert mask.mean().item() == pytest.approx(1.0, rel=1e-4) and mask.min() > 0


def _gradient(w: int, h: int) -> torch.Tensor:
    ramp = torch.linspace(0.2, 0.8, w).view(1, 1, w).expand(3, h, w) * torch.tensor([1.0, 0.9, 0.7]).view(3, 1, 1)
    return torch.round(ramp * 255) / 255


def test_flat_images_get_less_energy_and_textured_ones_all_of_it():
    torch.manual_seed(3)
    plain = AnySizeCodec(AnySizeConfig(**SMALL)).eval()
    gentle = AnySizeCodec(AnySizeConfig(**SMALL, flat_texture=0.02, flat_energy_floor=0.35)).eval()
    gentle.load_state_dict(plain.state_dict())
    bits = torch.randint(0, 2, (1, 24)).float()
    flat, busy = _gradient(300, 200), torch.from_numpy(np.asarray(_photo(300, 200))).permute(2, 0, 1) / 255.0
    rms = lambda codec, x: codec.residual(x[None], bits).pow(2).mean().sqrt().item()  # noqa: E731
    assert rms(gentle, flat) == pytest.approx(0.35 * rms(plain, flat), rel=1e-4)  # a gradient: the floor
    assert rms(gentle, busy) == pytest.approx(rms(plain, busy), rel=1e-6)  # textured: untouched
    middle = 0.5 * flat + 0.5 * busy
    assert 0.35 < rms(gentle, middle) / rms(plain, middle) <= 1.0


def test_saved_codec_loads_by_folder_and_is_recognised(codec, tmp_path):
    codec.save_pretrained(tmp_path / "m")
    assert is_anysize_model(tmp_path / "m")
    loaded = load_codec(tmp_path / "m")
    x = _photo(150, 90)
    assert torch.allclose(loaded.decode_logits(x), codec.decode_logits(x), atol=1e-4)
    with pytest.raises(GanprintError, match="any-size"):
        load_codec(tmp_path / "m", resolution=32)


def test_a_flat_image_gets_no_verdict(codec):
    result = codec.detect([Image.new("RGB", (300, 200), (120, 130, 140))], expected="1" * 24)
    assert not result.enough_signal[0] and not result.detected[0]
    assert codec.detect([_photo(300, 200)], expected="1" * 24).enough_signal[0]


def test_search_scores_follow_the_clean_yardstick_and_favour_the_uncropped_reading(codec):
    import dataclasses

    scales = codec.reading_scales()  # scale index of every reading
    logits = torch.zeros(1, len(scales), 24)
    half = int((scales == 4).nonzero()[3])  # a reading at scale 0.5, confidence 2
    logits[0, half] = 2.0
    logits[0, 0] = 1.0  # the uncropped one, confidence 1
    assert codec.search_scores(logits).argmax().item() == half  # raw confidence without a yardstick
    null = ((0.5, 0.25),) * 4 + ((2.0, 0.5),)  # scale 0.5 reads 2.0 on clean images anyway
    try:
        codec.config = dataclasses.replace(codec.config, search_null=null, canonical_bonus=0.0)
        assert codec.search_scores(logits).argmax().item() == 0
    finally:
        codec.config = dataclasses.replace(codec.config, search_null=None, canonical_bonus=2.0)


def test_non_finite_weights_are_an_error_not_a_verdict(codec, tmp_path):
    broken = AnySizeCodec(AnySizeConfig(**SMALL))
    broken.load_state_dict(codec.state_dict())
    with torch.no_grad():
        broken.decoder.readout.weight.fill_(float("nan"))
    with pytest.raises(GanprintError, match="non-finite|broken"):
        broken.decode_logits(_photo(100, 100))


def test_training_resumes_exactly(tmp_path):
    from ganprint.codec.anysize_train import AnySizeTrainOptions, train_anysize
    from safetensors.torch import load_file

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        _photo(300, 260, seed=i).save(photos / f"p{i}.png")
    common = dict(data_dir=str(photos), channels=8, fingerprint_length=16, batch_size=2, eval_every=1000,
                  snapshot_every=2, progress=False, attack_accuracy=0.0, augment_ramp=2)  # fmt: skip
    straight = train_anysize(AnySizeTrainOptions(**common, output_dir=str(tmp_path / "a"), steps=4))
    first = train_anysize(AnySizeTrainOptions(**common, output_dir=str(tmp_path / "b"), steps=2))
    resumed = train_anysize(AnySizeTrainOptions(**common, output_dir=str(tmp_path / "b"), steps=4), resume=first)
    a = load_file(str(straight / "final" / "model.safetensors"))
    b = load_file(str(resumed / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (straight / "grid-000002.png").is_file()


def test_greyscale_views_read_the_channels_mean_and_leave_other_draws_alone(codec):
    from ganprint.codec.anysize_train import AnySizeTrainOptions, attack_and_read, draw_attack

    plain = dict(data_dir="", crop_probability=0, downscale_probability=0, compress_probability=0,
                 rotate_probability=0)  # fmt: skip
    marked = torch.from_numpy(np.asarray(_photo(160, 160), dtype=np.float32) / 255).permute(2, 0, 1)
    marked = torch.stack([marked, marked.flip(-1)])
    off = draw_attack(AnySizeTrainOptions(**plain), 2, torch.Generator().manual_seed(5))
    on = draw_attack(AnySizeTrainOptions(**plain, grey_probability=1.0), 2, torch.Generator().manual_seed(5))
    assert off.grey is None and on.grey.all() and on.jitter == off.jitter and on.compress == off.compress
    with torch.no_grad():
        grey_read = attack_and_read(codec, marked, on, None, 0, torch.Generator())[0]
        greyed = marked.mean(1, keepdim=True).expand_as(marked)
        torch.testing.assert_close(grey_read, attack_and_read(codec, greyed, off, None, 0, torch.Generator())[0])
        assert not torch.allclose(grey_read, attack_and_read(codec, marked, off, None, 0, torch.Generator())[0])
    half = draw_attack(AnySizeTrainOptions(**plain, grey_probability=0.5), 400, torch.Generator().manual_seed(1))
    assert 150 < int(half.grey.sum()) < 250



def test_a_confident_uncropped_reading_ends_the_search_and_otherwise_every_view_is_read():
    import dataclasses

    from ganprint.codec.anysize import to_working

    torch.manual_seed(0)
    codec = AnySizeCodec(AnySizeConfig(**SMALL)).eval()
    photos = [_photo(300, 200, seed=1), _photo(180, 240, seed=2)]
    base = torch.cat([to_working(codec._tensor(p, 0), codec.config.working_resolution) for p in photos])
    calls = []
    reduced = codec.reduced_readings
    codec.reduced_readings = lambda b: calls.append(len(b)) or reduced(b)

    def best_of(logits):  # the reading search_scores picks, per image
        return logits[torch.arange(len(logits)), codec.search_scores(logits).argmax(1)]

    with torch.no_grad():
        uncropped = codec.uncropped_readings(base)
        full = torch.cat([uncropped, reduced(base)], dim=1)
    spread = float(uncropped.abs().mean(-1).std())
    # a yardstick that puts every uncropped reading far out: no crop view is read
    codec.config = dataclasses.replace(codec.config, search_null=((0.0, spread / 100),) * 5)
    torch.testing.assert_close(codec.decode_logits(photos), best_of(uncropped), rtol=0, atol=1e-5)
    assert calls == []
    # without the shortcut, or with a yardstick nothing reaches, every view is read: the full search's choice
    for config in (dataclasses.replace(codec.config, confident_score=None),
                   dataclasses.replace(codec.config, search_null=((1e3, 1.0),) * 5)):  # fmt: skip
        codec.config, calls[:] = config, []
        torch.testing.assert_close(codec.decode_logits(photos), best_of(full), rtol=0, atol=1e-5)
        assert calls == [2]
    with pytest.raises(GanprintError, match="confident_score"):
        AnySizeConfig(**SMALL, confident_score=0.0).validate()


def test_training_starts_from_a_codec_whatever_its_inference_settings_but_not_other_networks(codec, tmp_path):
    import dataclasses

    from ganprint.codec.anysize_train import load_initial_weights

    tuned = AnySizeCodec(dataclasses.replace(codec.config, flat_texture=0.02, residual_rms=0.01, confident_score=None))
    tuned.load_state_dict(codec.state_dict())
    tuned.save_pretrained(tmp_path / "tuned")
    fresh = AnySizeCodec(AnySizeConfig(**SMALL))
    load_initial_weights(fresh, str(tmp_path / "tuned"))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), codec.state_dict().values()))
    with pytest.raises(GanprintError, match="differ"):
        load_initial_weights(AnySizeCodec(AnySizeConfig(**{**SMALL, "channels": 16})), str(tmp_path / "tuned"))
