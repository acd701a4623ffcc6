"""The original ICCV 2021 encoder/decoder: layout, equivalence with an independent functional reference
written from docs/methods.md, checkpoint import (nesting, DataParallel, CUDA-saved files) and errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganprint.codec.original import (
    OriginalCheckpoint,
    OriginalDecoder,
    OriginalEncoder,
    build_original,
    read_original_checkpoint,
)
from ganprint.errors import GanprintError

torch.set_num_threads(1)  # a training job shares the machine

L = 100


# ------------------------------------------------------------------ helpers


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights AND biases of a moderate scale, so every parameter matters in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            scale = (2.0 / fan_in) ** 0.5 if p.dim() > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module.eval()


def _inputs(n: int, r: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, r, r, generator=g), torch.randint(0, 2, (n, L), generator=g).float()


def _raises(match_file: Path | str, fn, *args, **kwargs) -> str:
    """Call fn, expect a one-line GanprintError naming the file; return the message."""
    with pytest.raises(GanprintError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, msg
    if match_file:
        assert str(match_file) in msg, msg
    return msg


# ------------------------------------------------------------------ independent functional reference
# Written from the prose of methods.md, applied to the state dict by key name; it shares no code with
# the modules (nearest upsampling via repeat_interleave, not F.interpolate).


def _nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def ref_encoder(sd: dict, images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    r = images.shape[-1]

    def conv(name, x, stride=1, padding=1):
        return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], stride=stride, padding=padding)

    def up(name, x):  # nearest x2, zero-pad right/bottom by 1, 2x2 conv, ReLU
        return F.relu(conv(name, F.pad(_nearest(x, 2), (0, 1, 0, 1)), padding=0))

    fp = F.relu(F.linear(bits, sd["secret_dense.weight"], sd["secret_dense.bias"]))
    fp = _nearest(fp.reshape(-1, 3, 16, 16), r // 16)
    x0 = torch.cat([fp, images], 1)
    c1 = F.relu(conv("conv1", x0))
    c2 = F.relu(conv("conv2", c1, stride=2))
    c3 = F.relu(conv("conv3", c2, stride=2))
    c4 = F.relu(conv("conv4", c3, stride=2))
    c5 = F.relu(conv("conv5", c4, stride=2))
    c6 = F.relu(conv("conv6", torch.cat([c4, up("up6", c5)], 1)))
    c7 = F.relu(conv("conv7", torch.cat([c3, up("up7", c6)], 1)))
    c8 = F.relu(conv("conv8", torch.cat([c2, up("up8", c7)], 1)))
    c9 = F.relu(conv("conv9", torch.cat([c1, up("up9", c8), x0], 1)))
    c10 = F.relu(conv("conv10", c9))
    return torch.sigmoid(conv("residual", c10, padding=0))


def ref_decoder(sd: dict, images: torch.Tensor) -> torch.Tensor:
    x = images
    for index, stride in zip(range(0, 13, 2), (2, 1, 2, 1, 2, 2, 2)):
        x = F.relu(F.conv2d(x, sd[f"decoder.{index}.weight"], sd[f"decoder.{index}.bias"], stride=stride, padding=1))
    x = F.relu(F.linear(x.reshape(x.shape[0], -1), sd["dense.0.weight"], sd["dense.0.bias"]))
    return F.linear(x, sd["dense.2.weight"], sd["dense.2.bias"])


# ------------------------------------------------------------------ layout


def test_encoder_parameter_count_about_1_07_million_independent_of_resolution():
    counts = {r: sum(p.numel() for p in OriginalEncoder(r, L).parameters()) for r in (32, 64, 128, 256)}
    assert len(set(counts.values())) == 1, counts
    assert abs(counts[32] - 1.07e6) / 1.07e6 < 0.01, counts


@pytest.mark.parametrize("r", [32, 64, 128])
def test_encoder_keys_and_shapes(r):
    shapes = {k: tuple(v.shape) for k, v in OriginalEncoder(r, L).state_dict().items()}
    expected = {
        "secret_dense": (768, L),
        "conv1": (32, 6, 3, 3),
        "conv2": (32, 32, 3, 3),
        "conv3": (64, 32, 3, 3),
        "conv4": (128, 64, 3, 3),
        "conv5": (256, 128, 3, 3),
        "up6": (128, 256, 2, 2),
        "conv6": (128, 256, 3, 3),
        "up7": (64, 128, 2, 2),
        "conv7": (64, 128, 3, 3),
        "up8": (32, 64, 2, 2),
        "conv8": (32, 64, 3, 3),
        "up9": (32, 32, 2, 2),
        "conv9": (32, 70, 3, 3),
        "conv10": (32, 32, 3, 3),
        "residual": (3, 32, 1, 1),
    }
    want = {}
    for name, w in expected.items():
        want[f"{name}.weight"] = w
        want[f"{name}.bias"] = (w[0],)
    assert shapes == want


@pytest.mark.parametrize("r", [32, 64, 128])
def test_decoder_keys_and_shapes(r):
    shapes = {k: tuple(v.shape) for k, v in OriginalDecoder(r, L).state_dict().items()}
    convs = [(32, 3), (32, 32), (64, 32), (64, 64), (64, 64), (128, 64), (128, 128)]
    want = {}
    for index, (cout, cin) in zip(range(0, 13, 2), convs):
        want[f"decoder.{index}.weight"] = (cout, cin, 3, 3)
        want[f"decoder.{index}.bias"] = (cout,)
    want["dense.0.weight"] = (512, 128 * (r // 32) ** 2)
    want["dense.0.bias"] = (512,)
    want["dense.2.weight"] = (L, 512)
    want["dense.2.bias"] = (L,)
    assert shapes == want


@pytest.mark.parametrize("bad", [16, 48, 96, 0, -64, 64.0, True])
def test_resolution_must_be_power_of_two_at_least_32(bad):
    for cls in (OriginalEncoder, OriginalDecoder):
        _raises("", cls, bad, L)


# ------------------------------------------------------------------ same outputs as the original networks


@pytest.mark.parametrize("r", [32, 64])
def test_encoder_matches_functional_reference(r):
    enc = _randomize(OriginalEncoder(r, L), seed=r)
    images, bits = _inputs(2, r)
    with torch.no_grad():
        out = enc(images, bits)
        ref = ref_encoder(enc.state_dict(), images, bits)
        other = ref_encoder(enc.state_dict(), images, 1 - bits)
    assert out.shape == (2, 3, r, r)
    assert 0 < out.min() and out.max() < 1  # sigmoid output: the image itself, not a residual
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # The comparison is sensitive: the bits visibly change the output (not saturated, not ignored).
    assert (ref - other).abs().max() > 1e-3


@pytest.mark.parametrize("r", [32, 64])
def test_decoder_matches_functional_reference(r):
    dec = _randomize(OriginalDecoder(r, L), seed=r + 1)
    images, _ = _inputs(3, r, seed=1)
    with torch.no_grad():
        out = dec(images)
        ref = ref_decoder(dec.state_dict(), images)
        other = ref_decoder(dec.state_dict(), images.flip(-1))
    assert out.shape == (3, L)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert (ref - other).abs().max() > 1e-3


def test_wrong_image_size_at_forward_is_a_clear_error():
    enc, dec = OriginalEncoder(32, L), OriginalDecoder(32, L)
    images, bits = _inputs(1, 64)
    msg = _raises("", enc, images, bits)
    assert msg == "encoder expects 32x32 images, got 64x64"
    msg = _raises("", dec, torch.rand(1, 3, 32, 48))
    assert msg == "decoder expects 32x32 images, got 32x48"
    _raises("", dec, torch.rand(1, 1, 32, 32))  # grayscale
    _raises("", enc, torch.rand(1, 3, 32, 32), torch.ones(1, 64))  # wrong fingerprint length


# ------------------------------------------------------------------ checkpoints: round trips


def _roundtrip(tmp_path: Path, module, payload, name: str, resolution=None, **save_kwargs):
    path = tmp_path / name
    torch.save(payload, path, **save_kwargs)
    ckpt = read_original_checkpoint(path, resolution=resolution)
    assert isinstance(ckpt, OriginalCheckpoint)
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in ckpt.state_dict.values())
    return ckpt, build_original(ckpt)


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict", "model", "legacy"])
def test_encoder_checkpoint_round_trip(tmp_path, wrap):
    enc = _randomize(OriginalEncoder(32, L), seed=3)
    sd = enc.state_dict()
    payload = {
        "plain": sd,
        "legacy": sd,
        "module": {f"module.{k}": v for k, v in sd.items()},
        "state_dict": {"state_dict": sd, "epoch": 20},
        "model": {"model": {f"module.{k}": v for k, v in sd.items()}},
    }[wrap]
    kwargs = {"_use_new_zipfile_serialization": False} if wrap == "legacy" else {}
    ckpt, loaded = _roundtrip(tmp_path, enc, payload, f"x_{wrap}_encoder.pth", resolution=32, **kwargs)
    assert (ckpt.kind, ckpt.fingerprint_length, ckpt.resolution) == ("encoder", L, 32)
    assert isinstance(loaded, OriginalEncoder) and not loaded.training
    images, bits = _inputs(2, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images, bits), enc(images, bits))


@pytest.mark.parametrize("r", [32, 64])
@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict"])
def test_decoder_checkpoint_round_trip_infers_resolution(tmp_path, wrap, r):
    dec = _randomize(OriginalDecoder(r, 48), seed=4)
    sd = dec.state_dict()
    payload = {
        "plain": sd,
        "module": {f"module.{k}": v for k, v in sd.items()},
        "state_dict": {"state_dict": sd},
    }[wrap]
    ckpt, loaded = _roundtrip(tmp_path, dec, payload, f"x_{wrap}_decoder.pth")
    assert (ckpt.kind, ckpt.fingerprint_length, ckpt.resolution) == ("decoder", 48, r)
    assert isinstance(loaded, OriginalDecoder) and not loaded.training
    images = torch.rand(2, 3, r, r)
    with torch.no_grad():
        assert torch.equal(loaded(images), dec(images))
    assert read_original_checkpoint(tmp_path / f"x_{wrap}_decoder.pth", resolution=r).resolution == r


def test_half_precision_checkpoint_is_read_as_float32(tmp_path):
    dec = OriginalDecoder(32, L)
    path = tmp_path / "half_decoder.pth"
    torch.save({k: v.half() for k, v in dec.state_dict().items()}, path)
    ckpt = read_original_checkpoint(path)
    assert all(t.dtype == torch.float32 for t in ckpt.state_dict.values())


def test_cuda_saved_checkpoint_opens_on_cpu(tmp_path, monkeypatch):
    enc = _randomize(OriginalEncoder(32, L), seed=5)
    path = tmp_path / "gpu_encoder.pth"
    # Record every storage as living on 'cuda:0', as the released checkpoints (saved from GPU training) do.
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    torch.save(enc.state_dict(), path)
    monkeypatch.undo()

    if not torch.cuda.is_available():
        # Meaningful: a plain load fails on this machine.
        with pytest.raises(RuntimeError, match="(?i)cuda"):
            torch.load(path, weights_only=True)
    ckpt = read_original_checkpoint(path, resolution=32)
    images, bits = _inputs(1, 32)
    with torch.no_grad():
        assert torch.equal(build_original(ckpt)(images, bits), enc(images, bits))


# ------------------------------------------------------------------ checkpoints: bad files


def _touch(path: str) -> str:
    Path(path).write_text("unpickled!")
    return "pwned"


class Malicious:
    """Unpickling this runs _touch(marker): the reader must never let that happen."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (_touch, (self.marker,))


def test_missing_empty_truncated_and_garbage_files(tmp_path):
    missing = tmp_path / "nope_encoder.pth"
    assert "not found" in _raises(missing, read_original_checkpoint, missing, 32)

    empty = tmp_path / "empty_decoder.pth"
    empty.write_bytes(b"")
    assert "empty" in _raises(empty, read_original_checkpoint, empty)

    good = tmp_path / "good_decoder.pth"
    torch.save(OriginalDecoder(32, L).state_dict(), good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated_decoder.pth"
    truncated.write_bytes(data[: len(data) // 2])
    _raises(truncated, read_original_checkpoint, truncated)

    legacy = tmp_path / "legacy_decoder.pth"
    torch.save(OriginalDecoder(32, L).state_dict(), legacy, _use_new_zipfile_serialization=False)
    legacy_truncated = tmp_path / "legacy_truncated_decoder.pth"
    legacy_truncated.write_bytes(legacy.read_bytes()[: legacy.stat().st_size // 2])
    _raises(legacy_truncated, read_original_checkpoint, legacy_truncated)

    garbage = tmp_path / "garbage_decoder.pth"
    garbage.write_bytes(os.urandom(4096))
    assert "not a PyTorch checkpoint" in _raises(garbage, read_original_checkpoint, garbage)

    text = tmp_path / "text_decoder.pth"
    text.write_text("hello, I am not a checkpoint\n")
    _raises(text, read_original_checkpoint, text)

    _raises(tmp_path, read_original_checkpoint, tmp_path)  # a directory


@pytest.mark.parametrize("how", ["pickle2", "pickle5", "torch_save"])
def test_pickled_objects_are_refused_without_running_them(tmp_path, how):
    marker = tmp_path / "marker"
    path = tmp_path / f"evil_{how}_encoder.pth"
    if how == "torch_save":
        torch.save({"conv1.weight": Malicious(str(marker))}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"conv1.weight": Malicious(str(marker))}, f, protocol=2 if how == "pickle2" else 5)
    assert not marker.exists()

    msg = _raises(path, read_original_checkpoint, path, 32)
    assert "not a plain state dict" in msg and "not unpickled" in msg, msg
    assert not marker.exists(), "the reader executed code from the checkpoint"

    # Control: the file really does run code when unpickled naively, so the check above means something.
    if how != "torch_save":
        with open(path, "rb") as f:
            pickle.load(f)
        assert marker.exists()


def test_state_dict_of_another_kind(tmp_path):
    path = tmp_path / "foo.pth"
    torch.save({"foo": torch.zeros(3)}, path)
    msg = _raises(path, read_original_checkpoint, path)
    assert "secret_dense" in msg and "dense.0" in msg  # says what was expected

    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], listed)
    _raises(listed, read_original_checkpoint, listed)

    both = tmp_path / "both.pth"
    torch.save({**OriginalEncoder(32, L).state_dict(), **OriginalDecoder(32, L).state_dict()}, both)
    _raises(both, read_original_checkpoint, both, 32)

    not_tensor = tmp_path / "int_encoder.pth"
    sd = OriginalEncoder(32, L).state_dict()
    sd["conv1.bias"] = 3
    torch.save(sd, not_tensor)
    _raises(not_tensor, read_original_checkpoint, not_tensor, 32)


def test_missing_and_unexpected_keys(tmp_path):
    sd = OriginalEncoder(32, L).state_dict()
    del sd["conv10.bias"]
    path = tmp_path / "missing_encoder.pth"
    torch.save(sd, path)
    assert "conv10.bias" in _raises(path, read_original_checkpoint, path, 32)

    sd = OriginalDecoder(32, L).state_dict()
    sd["decoder.14.weight"] = torch.zeros(3)
    path = tmp_path / "extra_decoder.pth"
    torch.save(sd, path)
    assert "decoder.14.weight" in _raises(path, read_original_checkpoint, path)


def test_wrong_shapes(tmp_path):
    sd = OriginalEncoder(32, L).state_dict()
    sd["conv3.weight"] = torch.zeros(64, 32, 5, 5)
    path = tmp_path / "shape_encoder.pth"
    torch.save(sd, path)
    assert "conv3.weight" in _raises(path, read_original_checkpoint, path, 32)

    sd = OriginalEncoder(32, L).state_dict()
    sd["secret_dense.weight"] = torch.zeros(700, L)
    path = tmp_path / "dense_encoder.pth"
    torch.save(sd, path)
    assert "secret_dense.weight" in _raises(path, read_original_checkpoint, path, 32)

    sd = OriginalEncoder(32, L).state_dict()
    sd["secret_dense.bias"] = torch.zeros(768, 1)  # right number of values, wrong shape
    path = tmp_path / "bias_encoder.pth"
    torch.save(sd, path)
    assert "secret_dense.bias" in _raises(path, read_original_checkpoint, path, 32)

    sd = OriginalDecoder(32, L).state_dict()
    sd["dense.0.weight"] = torch.zeros(512, 1000)  # not 128 * (R/32)^2
    path = tmp_path / "flat_decoder.pth"
    torch.save(sd, path)
    assert "dense.0.weight" in _raises(path, read_original_checkpoint, path)

    sd = OriginalDecoder(32, L).state_dict()
    sd["dense.0.weight"] = torch.zeros(512, 128 * 9)  # R = 96: not a power of two
    path = tmp_path / "r96_decoder.pth"
    torch.save(sd, path)
    assert "power-of-two" in _raises(path, read_original_checkpoint, path)

    sd = OriginalDecoder(32, L).state_dict()
    sd["dense.2.weight"] = torch.zeros(L, 256)
    path = tmp_path / "last_decoder.pth"
    torch.save(sd, path)
    assert "dense.2.weight" in _raises(path, read_original_checkpoint, path)


def test_decoder_resolution_mismatch(tmp_path):
    path = tmp_path / "r64_decoder.pth"
    torch.save(OriginalDecoder(64, L).state_dict(), path)
    msg = _raises(path, read_original_checkpoint, path, 128)
    assert "64" in msg and "128" in msg
    _raises(path, read_original_checkpoint, path, 100)  # not a power of two at all


def test_encoder_needs_a_resolution(tmp_path):
    path = tmp_path / "plain_encoder.pth"
    torch.save(OriginalEncoder(32, L).state_dict(), path)
    ckpt = read_original_checkpoint(path)  # readable (L is known) ...
    assert (ckpt.kind, ckpt.fingerprint_length, ckpt.resolution) == ("encoder", L, None)
    msg = _raises(path, build_original, ckpt)  # ... but not buildable without R
    assert "--image_resolution" in msg
    _raises(path, read_original_checkpoint, path, 48)
    assert isinstance(build_original(read_original_checkpoint(path, 64)), OriginalEncoder)
