import math

import pytest
import torch
import torch.nn.functional as F

from ganprint.stylegan import (
    Decoder,
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    modulated_conv2d,
)
from ganprint.stylegan.networks import MinibatchStdDev

TINY = dict(resolution=16, z_dim=8, c_dim=12, w_dim=8, channels=(16, 8, 8), mapping_layers=2,
            res_modulated_range=(4, 16))  # fmt: skip


def tiny_generator(**kw) -> Generator:
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(**{**TINY, **kw}))
    with torch.no_grad():  # non-zero noise strengths and biases, so they take part in the tests
        for name, p in g.named_parameters():
            if name.endswith(("noise_strength", ".bias")) and "mapping" not in name and "affine" not in name:
                p.copy_(torch.randn_like(p) * 0.3)
    return g


def per_sample_reference(x, weight, styles, demodulate, up):
    """Modulated convolution one sample at a time, straight from the StyleGAN2 paper's equations."""
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n].view(1, -1, 1, 1)  # w'_ijk = s_i * w_ijk
        if demodulate:  # w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)
            w = w / torch.sqrt(w.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        if up:  # StyleGAN2: transposed conv with stride 2, then the [1,3,3,1] blur (gain 4), centred
            y = F.conv_transpose2d(x[n : n + 1], w.transpose(0, 1), stride=2)
            taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype)
            blur = (taps[:, None] * taps[None, :] / 16).expand(y.shape[1], 1, 4, 4)
            pad = (weight.shape[-1] - 1) // 2
            outs.append(F.conv2d(y, blur, padding=pad, groups=y.shape[1]))
        else:
            outs.append(F.conv2d(x[n : n + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


# Every combination the networks use: upsampling convolutions are 3x3, to-RGB layers 1x1.
@pytest.mark.parametrize("demodulate, up, kernel", [(d, up, k) for d in (True, False) for up, k in
                                                    ((False, 1), (False, 3), (True, 3))])  # fmt: skip
def test_fast_modulated_conv_equals_grouped_and_per_sample_forms(demodulate, up, kernel):
    torch.manual_seed(1)
    x = torch.randn(5, 6, 8, 8, dtype=torch.float64)
    weight = torch.randn(7, 6, kernel, kernel, dtype=torch.float64)
    styles = torch.randn(5, 6, dtype=torch.float64) * 2
    fast = modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up)
    fused = modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up, fused=True)
    ref = per_sample_reference(x, weight, styles, demodulate, up)
    assert fast.shape == (5, 7, 16 if up else 8, 16 if up else 8)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fused, ref, rtol=1e-10, atol=1e-10)


def test_demodulation_makes_the_output_independent_of_the_style_scale():
    torch.manual_seed(2)
    x, weight, styles = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.rand(3, 4) + 0.5
    a = modulated_conv2d(x, weight, styles)
    b = modulated_conv2d(x, weight, styles * torch.tensor([[10.0], [0.1], [3.0]]))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # without a style, the output is the convolution with each output filter normalised to unit norm
    unit = weight / weight.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
    torch.testing.assert_close(modulated_conv2d(x, weight, None), F.conv2d(x, unit, padding=1), rtol=1e-4, atol=1e-5)


def test_network_shapes_and_dtypes():
    g = tiny_generator()
    dcfg = DiscriminatorConfig(resolution=16, channels=(16, 8, 8))
    d, f = Discriminator(dcfg), Decoder(dcfg, z_dim=8, c_dim=12)
    z, c = torch.randn(4, 8), torch.randint(0, 2, (4, 12)).float()
    img = g(z, c)
    assert img.shape == (4, 3, 16, 16) and img.dtype == torch.float32
    logits = d(img)
    assert logits.shape == (4,) and logits.dtype == torch.float32
    z_hat, c_logits = f(img)
    assert z_hat.shape == (4, 8) and c_logits.shape == (4, 12)
    assert g.noise_shapes() == [(1, 4, 4), (1, 8, 8), (1, 8, 8), (1, 16, 16), (1, 16, 16)]
    with pytest.raises(ValueError, match=r"needs c of shape \(4, 12\)"):
        g(z, c[:, :5])
    with pytest.raises(ValueError, match="needs c"):
        g(z)


def test_z_enters_through_a_dense_layer_and_c_through_the_mapping_network():
    g = tiny_generator()
    assert g.z_input is not None and not hasattr(g, "const")
    assert g.mapping.net[0].weight.shape == (8, 12)  # the mapping reads the 12 fingerprint bits
    z, c = torch.randn(2, 8), torch.randint(0, 2, (2, 12)).float()
    base = g(z, c)
    assert not torch.allclose(base, g(torch.randn(2, 8), c))
    assert not torch.allclose(base, g(z, 1 - c))


@pytest.mark.parametrize("carrier_std", [0.0, 1.0])
def test_layers_outside_the_modulated_range_do_not_depend_on_c(carrier_std):
    g = tiny_generator(res_modulated_range=(16, 16), carrier_std=carrier_std)
    for block in g.blocks:
        has_affine = any(layer.affine is not None for layer in [*block.layers(), block.torgb])
        assert has_affine == (block.resolution == 16)
    seen = {}
    for block in g.blocks:
        block.register_forward_hook(lambda m, inp, out: seen.setdefault(m.resolution, []).append(out))
    z = torch.randn(3, 8)
    g(z, torch.zeros(3, 12))
    g(z, torch.ones(3, 12))
    for res in (4, 8):  # features and the partial image are identical for both codes
        for a, b in zip(seen[res][0], seen[res][1]):
            assert torch.equal(a, b)
    assert not torch.allclose(seen[16][0][1], seen[16][1][1])


@pytest.mark.parametrize("carrier_std", [0.0, 1.0])
def test_fold_equals_the_conditioned_generator(carrier_std):
    for rng in ((4, 16), (8, 8)):
        g = tiny_generator(res_modulated_range=rng, carrier_std=carrier_std)
        c = torch.randint(0, 2, (12,), generator=torch.Generator().manual_seed(3)).float()
        folded = g.fold(c)
        assert folded.mapping is None and not folded.takes_c
        assert not any("affine" in k or "mapping" in k for k in folded.state_dict())
        z = torch.randn(6, 8)
        with torch.no_grad():
            torch.testing.assert_close(folded(z), g(z, c.expand(6, -1)), rtol=0, atol=1e-5)
        with pytest.raises(ValueError, match="no fingerprint input"):
            folded(z, c.expand(6, -1))


@pytest.mark.parametrize("carrier_std", [0.0, 1.0])
def test_z_styles_fold_exactly_and_keep_z_in_every_layer(carrier_std):
    """With z_styles, z modulates every layer (also those c does not reach) through its own mapping
    network; folding bakes in only c's styles and keeps z's, exactly."""
    for rng in ((4, 16), (8, 8)):
        g = tiny_generator(res_modulated_range=rng, carrier_std=carrier_std, z_styles=True)
        # z's styles change the images beyond what the 4x4 input does: silence the input layer's weights
        with torch.no_grad():
            g.z_input.weight.zero_()
            a, b = torch.randn(2, 8), torch.randn(2, 8)
            c = torch.zeros(2, 12)
            assert not torch.allclose(g(a, c), g(b, c))
        c = torch.randint(0, 2, (12,), generator=torch.Generator().manual_seed(3)).float()
        folded = g.fold(c)
        assert folded.mapping is None and folded.mapping_z is not None and not folded.takes_c
        assert not any(".affine." in k or k.startswith("mapping.") for k in folded.state_dict())
        z = torch.randn(6, 8)
        with torch.no_grad():
            torch.testing.assert_close(folded(z), g(z, c.expand(6, -1)), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="z_styles needs a fingerprint input"):
        tiny_generator(c_dim=0, z_styles=True)


def test_carriers_give_the_code_a_path_that_does_not_need_z():
    """With z's 4x4 map, biases and noise silenced, features are zero: without carriers every code
    gives the same image; with carriers (learned constant maps at each layer's input) it depends on c."""
    for carrier_std, depends_on_c in ((0.0, False), (1.0, True)):
        g = tiny_generator(carrier_std=carrier_std)
        carriers = {k: v.shape for k, v in g.state_dict().items() if "carrier" in k}
        layers = [layer for block in g.blocks for layer in block.layers()]
        assert len(carriers) == (len(layers) if carrier_std else 0)
        if carrier_std:
            assert carriers["blocks.1.conv0.carrier"] == (1, 16, 4, 4)  # the input of 8x8's upsampling conv
            assert carriers["blocks.1.conv1.carrier"] == (1, 8, 8, 8)
        with torch.no_grad():
            g.z_input.weight.zero_()
            g.z_input.bias.zero_()
            for layer in layers:
                layer.bias.zero_()
            z = torch.randn(2, 8)
            a = g(z, torch.zeros(2, 12), noise_mode="none")
            b = g(z, torch.ones(2, 12), noise_mode="none")
        assert torch.allclose(a, b) != depends_on_c


def test_unconditional_generator_is_plain_stylegan2():
    g = tiny_generator(c_dim=0)
    assert g.z_input is None and g.const.shape == (16, 4, 4)
    assert g.mapping.net[0].weight.shape == (8, 8) and g.mapping.normalize_input
    z = torch.randn(3, 8)
    img = g(z)
    assert img.shape == (3, 3, 16, 16)
    # z is normalised before the mapping: scaling it changes nothing
    torch.testing.assert_close(g(z * 5), img, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(g(torch.randn(3, 8)), img)
    with pytest.raises(ValueError, match="no fingerprint input"):
        g(z, torch.zeros(3, 0))


def test_noise_modes():
    g = tiny_generator()
    z, c = torch.randn(2, 8), torch.zeros(2, 12)
    assert torch.equal(g(z, c), g(z, c, noise_mode="const"))
    torch.manual_seed(5)
    r1 = g(z, c, noise_mode="random")
    assert not torch.allclose(r1, g(z, c, noise_mode="random"))
    zero = [torch.zeros(2, *s) for s in g.noise_shapes()]
    torch.testing.assert_close(g(z, c, noise=zero), g(z, c, noise_mode="none"))
    const = [layer.noise_const.expand(2, -1, -1, -1) for b in g.blocks for layer in b.layers()]
    torch.testing.assert_close(g(z, c, noise=const), g(z, c))


def test_minibatch_stddev_against_a_direct_computation():
    torch.manual_seed(4)
    x = torch.randn(8, 3, 4, 4)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (8, 4, 4, 4)
    for group in range(2):
        members = x[group * 4 : group * 4 + 4]
        expected = members.std(dim=0, unbiased=False).mean()
        for n in range(group * 4, group * 4 + 4):
            torch.testing.assert_close(out[n, 3], torch.full((4, 4), expected.item()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[:, :3], x)


def test_equalized_learning_rate_scales():
    g = tiny_generator()
    first = g.mapping.net[0]
    assert first.weight_gain == pytest.approx(0.01 / math.sqrt(12))
    # stored weights are N(0,1)/lr_multiplier, so the effective weights are N(0, 1/fan_in)
    effective = first.weight * first.weight_gain
    assert effective.std().item() == pytest.approx(1 / math.sqrt(12), rel=0.5)
