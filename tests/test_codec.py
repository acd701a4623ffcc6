import dataclasses
import json

import pytest
import torch
from PIL import Image

from ganprint.codec import CodecConfig, FingerprintCodec
from ganprint.errors import GanprintError


def test_shapes_and_range(tiny_codec):
    x = torch.rand(5, 3, 32, 32)
    bits = torch.randint(0, 2, (5, 16)).float()
    marked = tiny_codec.embed(x, bits)
    assert marked.shape == x.shape and marked.dtype == torch.float32
    assert marked.min() >= 0 and marked.max() <= 1
    result = tiny_codec.detect(marked, expected=bits)
    assert result.bits.shape == (5, 16) and result.logits.shape == (5, 16)
    assert set(result.bits.unique().tolist()) <= {0.0, 1.0}
    assert len(result.p_value) == 5 and all(0 < p <= 1 for p in result.p_value)


def test_residual_has_the_configured_rms(tiny_codec):
    x = torch.full((4, 3, 32, 32), 0.5)  # mid-grey: nothing is clamped
    marked = tiny_codec.embed(x, torch.randint(0, 2, (16,)).float())
    rms = (marked - x).pow(2).mean((1, 2, 3)).sqrt()
    assert torch.allclose(rms, torch.full((4,), tiny_codec.config.residual_rms), rtol=1e-3)
    stronger = tiny_codec.embed(x, torch.zeros(16), strength=0.05)
    assert (stronger - x).pow(2).mean().sqrt().item() == pytest.approx(0.05, rel=1e-3)


def test_mean_preserving_residual_keeps_each_channels_mean_even_where_pixels_clip(tiny_codec):
    # Half black, half white, a grey stripe: most of the residual's one sign is clipped away, which
    # leaves a net tint unless the encoder corrects for it.
    x = torch.zeros(3, 3, 32, 32)
    x[:, :, :, 16:] = 1.0
    x[:, :, 12:20] = torch.rand(3, 3, 8, 32) * 0.8 + 0.1
    bits = torch.randint(0, 2, (3, 16), generator=torch.Generator().manual_seed(0)).float()
    config = dataclasses.replace(tiny_codec.config, residual_rms=0.05)
    plain = FingerprintCodec(config)
    plain.load_state_dict(tiny_codec.state_dict())
    keeping = FingerprintCodec(dataclasses.replace(config, mean_preserving=True))
    keeping.load_state_dict(tiny_codec.state_dict())
    shift_plain = (plain.embed(x, bits) - x).mean((2, 3)).abs().max().item()
    change = keeping.embed(x, bits) - x
    assert shift_plain > 1e-3  # without it, clipping tints the image
    assert change.mean((2, 3)).abs().max().item() < 1e-6
    assert change.pow(2).mean().sqrt().item() > 0.02  # the fingerprint is still there
    # the setting is part of config.json; configs written before it existed load as before
    assert CodecConfig.from_dict(keeping.config.to_dict()).mean_preserving is True
    old = {k: v for k, v in plain.config.to_dict().items() if k != "mean_preserving"}
    assert CodecConfig.from_dict(old).mean_preserving is False
    with pytest.raises(GanprintError, match="mean_preserving"):
        CodecConfig.from_dict({**old, "mean_preserving": "yes"})


def test_embed_is_deterministic_and_depends_on_bits(tiny_codec):
    x = torch.rand(2, 3, 32, 32)
    a = tiny_codec.embed(x, torch.zeros(16))
    assert torch.equal(a, tiny_codec.embed(x, torch.zeros(16)))
    assert not torch.equal(a, tiny_codec.embed(x, torch.ones(16)))


def test_pil_in_pil_out_any_size(tiny_codec):
    img = Image.new("RGB", (80, 50), (120, 30, 200))
    out = tiny_codec.embed(img, "1" * 16)
    assert isinstance(out, Image.Image) and out.size == (32, 32)
    outs = tiny_codec.embed([img, img.convert("L")], "0x" + "ab12")
    assert len(outs) == 2 and all(o.mode == "RGB" for o in outs)
    result = tiny_codec.detect(outs)
    assert result.bits.shape == (2, 16)


def test_single_image_tensor(tiny_codec):
    out = tiny_codec.embed(torch.rand(3, 32, 32), torch.ones(16))
    assert out.shape == (3, 32, 32)


@pytest.mark.parametrize(
    "images,bits",
    [
        (torch.rand(2, 3, 64, 64), torch.ones(16)),  # wrong resolution
        (torch.rand(2, 1, 32, 32), torch.ones(16)),  # not RGB
        (torch.randint(0, 255, (2, 3, 32, 32)), torch.ones(16)),  # uint8 tensors
        (torch.rand(2, 3, 32, 32), torch.ones(15)),  # wrong length
        (torch.rand(2, 3, 32, 32), torch.ones(3, 16)),  # one fingerprint per image, wrong count
        (torch.rand(2, 3, 32, 32), torch.full((16,), 0.5)),  # not bits
    ],
)
def test_bad_api_inputs_are_clear_errors(tiny_codec, images, bits):
    with pytest.raises(GanprintError):
        tiny_codec.embed(images, bits)


def test_save_and_load_pretrained(tmp_path, tiny_codec):
    tiny_codec.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["kind"] == "ganprint.codec" and config["fingerprint_length"] == 16
    back = FingerprintCodec.from_pretrained(tmp_path / "m")
    x, bits = torch.rand(3, 3, 32, 32), torch.randint(0, 2, (3, 16)).float()
    assert torch.equal(back.embed(x, bits), tiny_codec.embed(x, bits))
    assert torch.equal(back.decode_logits(x), tiny_codec.decode_logits(x))


def test_decoder_only_codec(tmp_path, tiny_config):
    codec = FingerprintCodec(tiny_config, encoder=False)
    codec.save_pretrained(tmp_path / "d")
    back = FingerprintCodec.from_pretrained(tmp_path / "d")
    assert back.encoder is None and back.decoder is not None
    with pytest.raises(GanprintError, match="no encoder"):
        back.embed(torch.rand(1, 3, 32, 32), torch.ones(16))


def test_weights_of_another_config_are_refused(tmp_path, tiny_codec, tiny_config):
    tiny_codec.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["fingerprint_length"] = 32
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(GanprintError, match="do not fit"):
        FingerprintCodec.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("resolution", [16, 48, 100])
def test_resolution_must_be_power_of_two_from_32(resolution):
    with pytest.raises(GanprintError):
        CodecConfig(resolution=resolution).validate()


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_networks_at_each_resolution(resolution):
    codec = FingerprintCodec(CodecConfig(resolution=resolution, fingerprint_length=8, channels=4, message_channels=2))
    x = torch.rand(1, 3, resolution, resolution)
    assert codec.embed(x, torch.ones(8)).shape == x.shape
    assert codec.decode_logits(x).shape == (1, 8)


def test_original_arch_codec_runs(tmp_path):
    codec = FingerprintCodec(CodecConfig(arch="original", resolution=32, fingerprint_length=8))
    x = torch.rand(2, 3, 32, 32)
    out = codec.embed(x, torch.ones(8))
    assert out.shape == x.shape
    codec.save_pretrained(tmp_path / "o")
    back = FingerprintCodec.from_pretrained(tmp_path / "o")
    assert torch.equal(back.embed(x, torch.ones(8)), out)


def test_inference_builds_no_autograd_graph(tiny_codec):
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = tiny_codec.embed(x, torch.ones(16))
    assert not out.requires_grad and out.grad_fn is None
