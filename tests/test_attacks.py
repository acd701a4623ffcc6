"""Image- and model-level attacks: shapes, ranges, determinism, identities and exact values against
independent computations."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganprint.attacks import (
    ANY_SIZE_ATTACKS,
    ATTACKS,
    FIXED_SIZE_ATTACKS,
    area_crop_size,
    combined_parameters,
    parse_attack_levels,
    rescaled_size,
)
from ganprint.errors import GanprintError
from ganprint.model_attacks import MODEL_ATTACKS, parse_model_attack_levels, weight_tensors

ALL_LEVELS = [(name, v) for name, a in ATTACKS.items() for v in a.levels]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Four 32x32 images: smooth gradients plus texture, values spread over [0, 1]."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2])
    return (0.7 * base + 0.3 * torch.rand(4, 3, 32, 32, generator=g)).clamp(0, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _expected_size(name: str, value: float, h: int, w: int) -> tuple[int, int]:
    """The documented output size of each attack."""
    if name in ("rescale", "screenshot"):
        return rescaled_size(h, w, value)
    if name in ("crop_area", "crop_area_random"):
        return area_crop_size(h, w, value)
    return h, w


# ---------------------------------------------------------------------------------------- image
@pytest.mark.parametrize("name, value", ALL_LEVELS, ids=[f"{n}:{v:g}" for n, v in ALL_LEVELS])
def test_every_level_gives_the_documented_shape_and_range_and_is_deterministic(images, name, value):
    attack = ATTACKS[name]
    out = attack(images, value, seed=3)
    assert out.shape == (*images.shape[:2], *_expected_size(name, value, 32, 32)) and out.dtype == images.dtype
    assert (out.shape == images.shape) == attack.keeps_size or (name, value) == ("screenshot", 1)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, attack(images, value, seed=3))  # same seed, same result
    assert out.shape != images.shape or not torch.equal(out, images)  # every default level changes something
    assert torch.equal(images, images.clamp(0, 1))  # the input is not modified in place


@pytest.mark.parametrize("name", [n for n, a in ATTACKS.items() if a.identity is not None])
def test_identity_level_returns_the_images_unchanged(images, name):
    attack = ATTACKS[name]
    assert torch.equal(attack(images, attack.identity), images)


def test_only_noise_and_the_random_crop_depend_on_the_seed(images):
    big = torch.nn.functional.interpolate(images, size=(96, 128), mode="bilinear")  # room for crop positions
    for name, attack in ATTACKS.items():
        a, b = attack(big, attack.levels[0], seed=1), attack(big, attack.levels[0], seed=2)
        assert torch.equal(a, b) == (name not in ("noise", "crop_area_random")), name


def test_jpeg_is_a_real_pil_round_trip(images):
    out = ATTACKS["jpeg"](images, 50)
    array = (images[1] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=50)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert np.array_equal((out[1] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), expected)
    errors = [(ATTACKS["jpeg"](images, q) - images).pow(2).mean().item() for q in (95, 75, 30, 10)]
    assert errors == sorted(errors)  # lower quality, larger error


def test_blur_of_an_impulse_is_the_gaussian_kernel():
    x = torch.zeros(1, 3, 21, 21)
    x[..., 10, 10] = 1
    out = ATTACKS["blur"](x, 1.0)
    k = torch.exp(-torch.arange(-3, 4, dtype=torch.float64) ** 2 / 2)
    k = k / k.sum()
    expected = (k[:, None] * k[None, :]).float()
    torch.testing.assert_close(out[0, 0, 7:14, 7:14], expected, rtol=1e-5, atol=1e-6)
    assert out.sum().item() == pytest.approx(3.0, abs=1e-5)  # energy kept


def test_noise_has_the_requested_std():
    x = torch.full((8, 3, 32, 32), 0.5)
    diff = ATTACKS["noise"](x, 0.05, seed=0) - x
    assert diff.mean().item() == pytest.approx(0, abs=2e-3)
    assert diff.std().item() == pytest.approx(0.05, rel=0.03)


def test_crop_keeps_the_centre_and_resizes_it_back():
    x = torch.zeros(1, 3, 32, 32)
    x[..., 8:24, 8:24] = torch.tensor([0.2, 0.6, 0.9]).view(3, 1, 1)  # the central half, one colour
    out = ATTACKS["crop"](x, 0.5)
    torch.testing.assert_close(out, x[..., 8:9, 8:9].expand_as(x).contiguous())


def test_resize_keeps_flat_images_and_loses_detail(images):
    flat = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(ATTACKS["resize"](flat, 0.5), flat)
    errors = [(ATTACKS["resize"](images, f) - images).abs().mean().item() for f in (0.9, 0.5, 0.3)]
    assert errors == sorted(errors)


def test_rotation_by_90_degrees_is_rot90(images):
    torch.testing.assert_close(ATTACKS["rotation"](images, 90), torch.rot90(images, 1, dims=(-2, -1)))


def test_colour_attacks_against_their_formulas(images):
    torch.testing.assert_close(ATTACKS["brightness"](images, 1.3), (images * 1.3).clamp(0, 1))
    mean = _grey(images).mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(ATTACKS["contrast"](images, 0.5), (0.5 * images + 0.5 * mean).clamp(0, 1))
    torch.testing.assert_close(ATTACKS["saturation"](images, 0.0), _grey(images).expand_as(images), atol=1e-6, rtol=0)
    assert torch.equal(ATTACKS["hflip"](images, 1), images.flip(-1))


def test_combined_is_crop_then_brightness_then_jpeg(images):
    p = combined_parameters(3)
    assert p == pytest.approx({"crop": 0.85, "brightness": 1.3, "jpeg": 70})
    by_hand = ATTACKS["jpeg"](ATTACKS["brightness"](ATTACKS["crop"](images, p["crop"]), p["brightness"]), 70)
    assert torch.equal(ATTACKS["combined"](images, 3), by_hand)


def test_parse_levels():
    assert [lv.label for lv in parse_attack_levels("jpeg")] == ["jpeg:90", "jpeg:75", "jpeg:50", "jpeg:30", "jpeg:10"]
    levels = parse_attack_levels(["jpeg:75,noise:0.05", "jpeg:75", " crop:0.9 "])
    assert [lv.label for lv in levels] == ["jpeg:75", "noise:0.05", "crop:0.9"]  # duplicates dropped, order kept
    assert len(parse_attack_levels(None)) == sum(len(a.levels) for a in ATTACKS.values())
    assert parse_attack_levels("all") == parse_attack_levels(None)


@pytest.mark.parametrize(
    "spec, words",
    [("jpg:75", "unknown attack 'jpg'"), ("jpeg:0", r"outside \[1, 100\]"), ("jpeg:75.5", "whole number"),
     ("crop:1.5", "outside"), ("noise:lots", "not a number"), ("noise:nan", "outside")],
)  # fmt: skip
def test_bad_levels_are_one_line_errors(spec, words):
    with pytest.raises(GanprintError, match=words):
        parse_attack_levels(spec)


@pytest.mark.parametrize("bad", [torch.rand(2, 32, 32), torch.rand(1, 1, 3, 8, 8), [torch.rand(1, 3, 8, 8)],
                                 [torch.rand(3, 8, 8), torch.zeros(3, 8, 8, dtype=torch.uint8)], "image.png"])
def test_attacks_refuse_other_shapes_and_types(bad):
    with pytest.raises(GanprintError, match=r"expected float images \(N,3,H,W\), \(3,H,W\) or a list"):
        ATTACKS["noise"](bad, 0.1)


# ------------------------------------------------------------------------ images of any size
@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """One 120x200 (3,H,W) image: gradients plus texture, not square, sides not multiples of 8."""
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 120), torch.linspace(0, 1, 200), indexing="ij")
    base = torch.stack([xx, yy, 1 - xx * yy])
    return (0.75 * base + 0.25 * torch.rand(3, 120, 200, generator=g)).clamp(0, 1)


def _positions(h: int, w: int) -> torch.Tensor:
    """An image whose pixels say where they are: red = row / (h-1), green = column / (w-1)."""
    yy, xx = torch.meshgrid(torch.arange(h) / (h - 1), torch.arange(w) / (w - 1), indexing="ij")
    return torch.stack([yy, xx, torch.zeros(h, w)])


def _where(crop: torch.Tensor, h: int, w: int) -> tuple[int, int]:
    """(top, left) of a crop of `_positions(h, w)`, read from its first pixel."""
    return round(float(crop[0, 0, 0]) * (h - 1)), round(float(crop[1, 0, 0]) * (w - 1))


@pytest.mark.parametrize("name, value, size", [
    ("rescale", 0.5, (60, 100)), ("rescale", 0.25, (30, 50)), ("rescale", 1.5, (180, 300)),
    ("crop_area", 0.25, (60, 100)), ("crop_area", 0.5, (85, 141)), ("crop_area_random", 0.25, (60, 100)),
    ("screenshot", 0.75, (90, 150)), ("jpeg", 75, (120, 200)), ("webp", 80, (120, 200)),
    ("rotation_reflect", 5, (120, 200)), ("contrast", 1.3, (120, 200)), ("saturation", 0.7, (120, 200)),
])  # fmt: skip
def test_one_image_of_any_size_gets_the_documented_size(photo, name, value, size):
    out = ATTACKS[name](photo, value)
    assert out.shape == (3, *size)
    assert torch.equal(out, ATTACKS[name](photo.unsqueeze(0), value)[0])  # one image = a batch of one
    if name.startswith("crop_area"):  # the kept share of the area, at the image's aspect ratio
        assert size[0] * size[1] / (120 * 200) == pytest.approx(value, abs=0.003)


def test_lists_of_images_of_different_sizes(photo):
    shapes = [(3, 120, 200), (3, 64, 64), (3, 81, 47)]
    batch = [photo[:, : s[1], : s[2]].clone() for s in shapes]
    for name, value in [("rescale", 0.5), ("crop_area", 0.5), ("jpeg", 50), ("webp", 80), ("rotation_reflect", 2),
                        ("noise", 0.05), ("crop_area_random", 0.25)]:  # fmt: skip
        out = ATTACKS[name](batch, value, seed=4)
        assert isinstance(out, list) and len(out) == 3
        assert [tuple(o.shape[-2:]) for o in out] == [_expected_size(name, value, s[1], s[2]) for s in shapes]
        assert all(torch.equal(o, p) for o, p in zip(out, ATTACKS[name](batch, value, seed=4)))
    one_by_one = [ATTACKS["rescale"](x, 0.5) for x in batch]
    assert all(torch.equal(a, b) for a, b in zip(ATTACKS["rescale"](batch, 0.5), one_by_one))


def test_rescale_matches_pils_bicubic_resize(photo):
    array = (photo * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    for factor in (0.5, 0.25):
        h, w = rescaled_size(120, 200, factor)
        expected = np.asarray(Image.fromarray(array).resize((w, h), Image.BICUBIC), dtype=np.float64)
        got = (ATTACKS["rescale"](torch.from_numpy(array).permute(2, 0, 1).float() / 255, factor) * 255).round()
        diff = np.abs(got.permute(1, 2, 0).numpy() - expected)
        assert diff.mean() < 0.5 and diff.max() <= 6  # the same filter, up to PIL's 8-bit intermediate rounding
    flat = torch.full((3, 90, 70), 0.3)
    torch.testing.assert_close(ATTACKS["rescale"](flat, 0.25), torch.full((3, 22, 18), 0.3))


def test_centre_crop_position():
    x = _positions(120, 200)
    for share in (0.5, 0.25):
        out = ATTACKS["crop_area"](x, share)
        ch, cw = out.shape[-2:]
        top, left = _where(out, 120, 200)
        assert abs(top - (120 - ch) / 2) <= 0.5 and abs(left - (200 - cw) / 2) <= 0.5
        assert torch.equal(out, x[:, top : top + ch, left : left + cw])


def test_random_crop_positions_vary_per_image_and_seed_and_stay_inside():
    x = _positions(120, 200).expand(12, -1, -1, -1).contiguous()
    out = ATTACKS["crop_area_random"](x, 0.25, seed=0)
    ch, cw = out.shape[-2:]
    places = [_where(o, 120, 200) for o in out]
    for (top, left), o in zip(places, out):
        assert 0 <= top <= 120 - ch and 0 <= left <= 200 - cw
        assert torch.equal(o, x[0, :, top : top + ch, left : left + cw])  # a window of the image, unscaled
    assert len(set(places)) >= 10  # its own place per image
    centre = _where(ATTACKS["crop_area"](x[0], 0.25), 120, 200)
    assert sum(p == centre for p in places) <= 1  # off-centre
    again = [_where(o, 120, 200) for o in ATTACKS["crop_area_random"](x, 0.25, seed=0)]
    other = [_where(o, 120, 200) for o in ATTACKS["crop_area_random"](x, 0.25, seed=1)]
    assert again == places and other != places


def test_jpeg_and_webp_are_real_pil_round_trips_at_any_size(photo):
    array = (photo * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    for name, file_format, quality in (("jpeg", "JPEG", 75), ("webp", "WEBP", 80), ("webp", "WEBP", 50)):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=file_format, quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            assert decoded.format == file_format
            expected = np.asarray(decoded.convert("RGB"))
        out = ATTACKS[name](torch.from_numpy(array).permute(2, 0, 1).float() / 255, quality)
        got = (out * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(got, expected)
        assert np.abs(got.astype(int) - array).mean() > 0.5  # lossy: the pixels really change
    errors = [(ATTACKS["webp"](photo, q) - photo).pow(2).mean().item() for q in (95, 80, 50, 10)]
    assert errors == sorted(errors)


def test_rotation_reflect_turns_counter_clockwise_and_fills_borders_by_reflection(photo):
    square = photo[:, :96, :96].contiguous()
    torch.testing.assert_close(ATTACKS["rotation_reflect"](square, 90), torch.rot90(square, 1, dims=(-2, -1)),
                               atol=1e-5, rtol=0)  # fmt: skip
    marker = torch.zeros(3, 101, 101)
    marker[:, 50, 90] = 1  # right of the centre: counter-clockwise by 30 degrees moves it up
    out = ATTACKS["rotation_reflect"](marker, 30)[0]
    row, col = divmod(int(out.argmax()), 101)
    assert (row, col) == (30, 85)  # (50 - 40 sin 30, 50 + 40 cos 30), y pointing down
    # same as the black-corner rotation inside, no black corners
    out = ATTACKS["rotation_reflect"](photo, 5)
    black = ATTACKS["rotation"](photo.unsqueeze(0), 5)[0]
    torch.testing.assert_close(out[:, 20:100, 30:170], black[:, 20:100, 30:170], atol=1e-5, rtol=0)
    assert black[:, :3, :3].max() == 0 and out[:, :3, :3].min() > 0.05
    flat = torch.full((3, 64, 90), 0.6)
    torch.testing.assert_close(ATTACKS["rotation_reflect"](flat, 5), flat)  # nothing comes in but the image
    assert not torch.equal(ATTACKS["rotation_reflect"](photo, 2), ATTACKS["rotation_reflect"](photo, -2))


def test_screenshot_is_rescale_then_jpeg_80(photo):
    by_hand = ATTACKS["jpeg"](ATTACKS["rescale"](photo, 0.75), 80)
    assert torch.equal(ATTACKS["screenshot"](photo, 0.75), by_hand)


def test_default_grids():
    fixed = parse_attack_levels(None, default=FIXED_SIZE_ATTACKS)
    assert {lv.attack.name for lv in fixed} == set(FIXED_SIZE_ATTACKS) and all(lv.attack.keeps_size for lv in fixed)
    assert len(fixed) == 49  # the grid codec-32's figures were measured on: never changes
    wild = [lv.label for lv in parse_attack_levels(ANY_SIZE_ATTACKS)]
    assert wild == ["jpeg:90", "jpeg:75", "jpeg:50", "webp:80", "rescale:0.5", "rescale:0.25", "crop_area:0.5",
                    "crop_area:0.25", "crop_area_random:0.5", "crop_area_random:0.25", "rotation_reflect:2",
                    "rotation_reflect:5", "contrast:0.7", "contrast:1.3", "saturation:0.7", "saturation:1.3",
                    "brightness:0.7", "brightness:1.3", "screenshot:0.75"]  # fmt: skip
    assert parse_attack_levels("jpeg:75", default=FIXED_SIZE_ATTACKS)[0].label == "jpeg:75"  # a spec wins


# ---------------------------------------------------------------------------------------- model
def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 3, 3, padding=1)).train()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


ALL_MODEL_LEVELS = [(n, v) for n, a in MODEL_ATTACKS.items() for v in a.levels if n != "finetune"]


def _clean_loss(model: nn.Module, g: torch.Generator) -> torch.Tensor:
    x = torch.rand(4, 3, 8, 8, generator=g)
    return (model(x) - x).pow(2).mean()


@pytest.mark.parametrize("name, value", ALL_MODEL_LEVELS, ids=[f"{n}:{v:g}" for n, v in ALL_MODEL_LEVELS])
def test_model_attacks_copy_and_are_deterministic(name, value):
    model = _net()
    before = _state(model)
    a = MODEL_ATTACKS[name](model, value, seed=5)
    b = MODEL_ATTACKS[name](model, value, seed=5)
    assert a is not model and a.training == model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # original untouched
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in before)
    changed = [k for k in before if not torch.equal(a.state_dict()[k], before[k])]
    assert changed and all(k.endswith("weight") for k in changed)  # biases are left alone
    assert a(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_weight_noise_is_relative_to_each_tensor():
    model = _net()
    noisy = MODEL_ATTACKS["weight_noise"](model, 0.1, seed=0)
    for (name, p), (_, q) in zip(weight_tensors(model), weight_tensors(noisy)):
        ratio = ((q - p).std() / p.std()).item()
        assert 0.06 < ratio < 0.14, name
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), MODEL_ATTACKS["weight_noise"](model, 0).parameters()))


def test_quantize_to_8_bits():
    model = _net()
    q = MODEL_ATTACKS["quantize"](model, 8)
    for (_, p), (_, w) in zip(weight_tensors(model), weight_tensors(q)):
        step = p.abs().max() / 127
        levels = torch.round(w / step)
        torch.testing.assert_close(levels * step, w)  # every weight sits on the grid
        assert levels.abs().max() <= 127 and len(torch.unique(levels)) <= 255
        assert (w - p).abs().max() <= step / 2 + 1e-7


def test_prune_zeroes_the_smallest_share():
    model = _net()
    pruned = MODEL_ATTACKS["prune"](model, 0.5)
    for (_, p), (_, w) in zip(weight_tensors(model), weight_tensors(pruned)):
        zeros = w == 0
        assert zeros.sum().item() == round(0.5 * p.numel())
        assert p.abs()[zeros].max() <= p.abs()[~zeros].min()  # the zeroed ones are the smallest
        assert torch.equal(w[~zeros], p[~zeros])
    assert not any(n.endswith("_orig") for n, _ in pruned.named_parameters())  # pruning made permanent


def test_finetune_lowers_the_clean_loss_and_needs_a_loss():
    model = _net()
    g = torch.Generator().manual_seed(9)
    before = _clean_loss(model, g).item()
    tuned = MODEL_ATTACKS["finetune"](model, 50, seed=0, loss_fn=_clean_loss, lr=1e-2)
    after = _clean_loss(tuned, torch.Generator().manual_seed(9)).item()
    assert after < 0.5 * before
    again = MODEL_ATTACKS["finetune"](model, 50, seed=0, loss_fn=_clean_loss, lr=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(tuned.parameters(), again.parameters()))
    with pytest.raises(GanprintError, match="needs a loss"):
        MODEL_ATTACKS["finetune"](model, 5)


def test_parse_model_levels():
    assert [lv.label for lv in parse_model_attack_levels("quantize:8,prune:0.3")] == ["quantize:8", "prune:0.3"]
    assert all(lv.kind == "model" for lv in parse_model_attack_levels(None))
    with pytest.raises(GanprintError, match="whole number"):
        parse_model_attack_levels("quantize:7.5")
    with pytest.raises(GanprintError, match="unknown attack 'jpeg'"):
        parse_model_attack_levels("jpeg:75")
    assert math.isclose(parse_model_attack_levels("weight_noise:0.06")[0].value, 0.06)
