"""FID: the Frechet distance against closed forms, streamed statistics, the stand-in network, the
Inception loader (with a locally made weights file: no download) and its missing-weights error."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from ganprint import fid
from ganprint.dataset_tool import create_from_images, open_dataset
from ganprint.errors import GanprintError


def random_spd(d: int, seed: int) -> np.ndarray:
    a = np.random.RandomState(seed).standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def exact_samples(mu: np.ndarray, sigma: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n samples whose sample mean is exactly mu and sample covariance (ddof 1) exactly sigma."""
    z = np.random.RandomState(seed).standard_normal((n, len(mu)))
    z -= z.mean(0)
    w, v = np.linalg.eigh(np.cov(z, rowvar=False))
    white = z @ v @ np.diag(w**-0.5) @ v.T  # sample covariance identity
    w, v = np.linalg.eigh(sigma)
    return white @ (v @ np.diag(np.sqrt(w)) @ v.T) + mu


# ------------------------------------------------------------------------------------- the distance
def test_closed_form_diagonal_gaussians():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    # |mu_a - mu_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2 = 5 + (1 + 1 + 4)
    assert fid.frechet_distance_from_moments(mu_a, np.diag(var_a), mu_b, np.diag(var_b)) == pytest.approx(11.0, abs=1e-12)
    assert fid.frechet_distance_from_moments(mu_a, np.diag(var_a), mu_a, np.diag(var_a)) == pytest.approx(0.0, abs=1e-12)


def test_closed_form_general_covariances_against_scipy_sqrtm():
    from scipy.linalg import sqrtm

    sa, sb = random_spd(6, 0), random_spd(6, 1)
    mu_a, mu_b = np.arange(6.0), np.arange(6.0)[::-1]
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(sa) + np.trace(sb) - 2 * np.trace(sqrtm(sa @ sb).real)
    assert fid.frechet_distance_from_moments(mu_a, sa, mu_b, sb) == pytest.approx(expected, rel=1e-10)
    # symmetric in its arguments although S_a S_b is not symmetric
    assert fid.frechet_distance_from_moments(mu_b, sb, mu_a, sa) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_feature_sets_with_known_moments():
    d = 5
    mu_a, mu_b = np.zeros(d), np.full(d, 0.5)
    sa, sb = random_spd(d, 2), random_spd(d, 3)
    a, b = exact_samples(mu_a, sa, 400, 0), exact_samples(mu_b, sb, 300, 1)
    expected = fid.frechet_distance_from_moments(mu_a, sa, mu_b, sb)
    assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert fid.frechet_distance(torch.from_numpy(a), b) == pytest.approx(expected, rel=1e-9)
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_streamed_statistics_equal_numpy_with_a_large_offset():
    rng = np.random.RandomState(0)
    x = rng.standard_normal((257, 7)) * 0.01 + 1e4  # a large common offset: naive sums lose digits
    stats = fid.FeatureStatistics(7)
    for chunk in np.array_split(x, [1, 50, 51, 200]):
        stats.update(chunk)
    assert stats.n == 257
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-7, atol=1e-12)
    with pytest.raises(GanprintError, match="at least 2 images"):
        fid.FeatureStatistics.from_features(x[:1]).cov


# ------------------------------------------------------------------------------------- stand-in network
def test_stand_in_is_deterministic_and_documented():
    a, b, c = fid.StandInFeatureNetwork(0), fid.StandInFeatureNetwork(0), fid.StandInFeatureNetwork(1)
    first = np.random.RandomState(0).standard_normal((32, 3, 3, 3)) * np.sqrt(2 / 27)
    np.testing.assert_allclose(a.convs[0].weight.numpy(), first.astype(np.float32))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a(x), b(x))
    assert not torch.allclose(a(x), c(x))
    assert a(x).shape == (4, fid.StandInFeatureNetwork.dim) and a.name == "stand-in:0"
    assert fid.load_feature_network("stand-in:1").name == "stand-in:1"
    with pytest.raises(GanprintError, match="the stand-in seed must be an integer"):
        fid.load_feature_network("stand-in:x")


def test_extract_features_accepts_uint8_greyscale_and_limits():
    net = fid.load_feature_network(fid.STAND_IN)
    u8 = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = fid.extract_features(net, [u8[:4], u8[4:]])
    b = fid.extract_features(net, [u8.float() / 255])
    assert a.dtype == np.float64 and a.shape == (6, net.dim)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    grey = u8[:, :1]
    np.testing.assert_allclose(fid.extract_features(net, [grey]), fid.extract_features(net, [grey.repeat(1, 3, 1, 1)]))
    assert fid.extract_features(net, [u8, u8, u8], limit=8).shape == (8, net.dim)
    quantized = fid.to_uint8(torch.tensor([-0.2, 0.0, 0.5, 0.502, 1.3]))
    assert torch.equal(quantized, torch.tensor([0, 0, 128, 128, 255], dtype=torch.uint8))


def test_stand_in_distance_zero_for_identical_sets_and_growing_with_a_shift():
    net = fid.load_feature_network("stand-in")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, 32, 32, generator=g) * 0.6 + 0.2
    base = fid.extract_features(net, [x])
    assert fid.frechet_distance(base, base) < 1e-9
    shifts = [fid.frechet_distance(base, fid.extract_features(net, [x + s])) for s in (0.05, 0.1, 0.2)]
    assert 0 < shifts[0] < shifts[1] < shifts[2]


# ------------------------------------------------------------------------------------- from sources
def test_fid_from_sources_against_a_dataset(tmp_path):
    rng = np.random.RandomState(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(rng.randint(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    create_from_images(tmp_path / "real.zip", folder, progress=False)
    source, _ = open_dataset(tmp_path / "real.zip")
    reals = torch.stack([torch.from_numpy(np.array(source.image(i))).permute(2, 0, 1) for i in range(40)])
    net = fid.load_feature_network("stand-in")

    same = fid.fid_from_sources(lambda: iter([reals[:25], reals[25:]]), tmp_path / "real.zip", 40, net, batch_size=16)
    assert same == pytest.approx(0.0, abs=1e-6)  # all 40 reals, in another order
    darker = fid.fid_from_sources([reals // 2], tmp_path / "real.zip", 40, net)
    assert darker > 1.0
    stats = fid.real_statistics(tmp_path / "real.zip", 40, net, resolution=16)
    assert fid.fid_from_sources([reals // 2], "unused", 40, net, real_stats=stats) == pytest.approx(darker, rel=1e-9)
    # a plain folder of images works as the real set too
    assert fid.fid_from_sources([reals // 2], folder, 40, net) == pytest.approx(darker, rel=1e-9)

    with pytest.raises(GanprintError, match="only 40 readable images; FID needs 41"):
        fid.fid_from_sources([reals, reals], tmp_path / "real.zip", 41, net)
    with pytest.raises(ValueError, match="generate_batches gave 40 images; FID needs 41"):
        fid.fid_from_sources([reals], tmp_path / "real.zip", 41, net)


def test_fid_command_between_two_image_folders(tmp_path, capsys):
    """`ganprint fid GENERATED --data REAL`: the same set scores 0, a darker copy more, whatever the
    generated images' size (brought to the first one's); too few images and a taken --output fail."""
    import json

    from helpers import cli_exit_code as run_cli

    rng = np.random.RandomState(0)
    for name, scale, size in (("real", 1, 16), ("same", 1, 16), ("darker", 2, 24)):
        (tmp_path / name).mkdir()
        for i in range(30):
            pixels = np.random.RandomState(i).randint(0, 256, (16, 16, 3), dtype=np.uint8) // scale
            Image.fromarray(pixels).resize((size, size), Image.NEAREST).save(tmp_path / name / f"{i:02d}.png")
    (tmp_path / "real" / "broken.png").write_bytes(b"not an image")  # skipped with a warning
    rng.shuffle(names := sorted(os.listdir(tmp_path / "same")))
    for i, name in enumerate(names):  # the same images under other names: another order
        os.rename(tmp_path / "same" / name, tmp_path / "same" / f"x{i:02d}.png")

    def fid_of(generated, *extra):
        out = tmp_path / f"{generated}-{len(extra)}.json"
        code = run_cli(["fid", tmp_path / generated, "--data", tmp_path / "real", "--num-images", 30,
                        "--fid-weights", "stand-in", "-q", "--output", out, *extra])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        return json.loads(out.read_text())

    same, darker = fid_of("same"), fid_of("darker")
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and same["resolution"] == 16
    assert darker["fid"] > 1.0 and darker["resolution"] == 24 and darker["feature_network"] == "stand-in:0"
    assert fid_of("darker", "--resolution", 16)["resolution"] == 16
    capsys.readouterr()
    assert run_cli(["fid", tmp_path / "same", "--data", tmp_path / "real", "--num-images", 30,
                    "--fid-weights", "stand-in", "-q"]) == 0  # fmt: skip
    printed = capsys.readouterr().out  # a stand-in value is never called an FID (docs/fid.md)
    assert printed.startswith("Frechet distance ") and "at 16x16, stand-in:0; relative comparisons only" in printed

    assert run_cli(["fid", tmp_path / "same", "--data", tmp_path / "real", "--num-images", 31,
                    "--fid-weights", "stand-in", "-q"]) == 1  # fmt: skip
    assert "only 30 readable images; FID needs 31" in capsys.readouterr().err
    assert run_cli(["fid", tmp_path / "same", "--data", tmp_path / "real", "--num-images", 30, "--fid-weights",
                    "stand-in", "-q", "--output", tmp_path / "same-0.json"]) == 1  # fmt: skip
    assert "already exists" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- Inception weights
def test_missing_weights_error_says_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected_path = tmp_path / "torch" / "hub" / "checkpoints" / fid.FID_WEIGHTS_FILE
    assert fid.default_weights_path() == expected_path
    with pytest.raises(GanprintError) as e:
        fid.load_feature_network(None)
    message = str(e.value)
    assert "\n" not in message
    assert f"the FID Inception weights are not in {expected_path}" in message
    assert fid.FID_WEIGHTS_URL in message and "--fid-weights" in message and "stand-in" in message
    with pytest.raises(GanprintError, match=r"nope\.pth: no such file; download https://"):
        fid.load_feature_network(tmp_path / "nope.pth")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-weights",))


def test_unsafe_or_wrong_weight_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"x": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(GanprintError, match="evil.pth: not a torch weights file that can be read safely"):
        fid.load_feature_network(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned-by-weights").exists()
    (tmp_path / "junk.pth").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(GanprintError, match="junk.pth: not a"):
        fid.load_feature_network(tmp_path / "junk.pth")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(GanprintError, match="other.pth: not the FID Inception weights"):
        fid.load_feature_network(tmp_path / "other.pth")


@pytest.fixture(scope="module")
def fake_inception_weights(tmp_path_factory):
    """A randomly initialised state dict of pytorch-fid's FID Inception, built without downloading."""
    import pytorch_fid.inception as lib

    captured = {}
    build = lib._inception_v3

    def capture(*args, **kwargs):
        captured["model"] = build(*args, **kwargs)
        return captured["model"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lib, "_inception_v3", capture)
        # By the time the builder asks for its weights, the captured model has its final structure.
        mp.setattr(lib, "load_state_dict_from_url", lambda *a, **k: captured["model"].state_dict())
        model = lib.fid_inception_v3()
    path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
    torch.save(model.state_dict(), path)
    return path


def test_inception_loads_from_a_path_and_from_the_cache(fake_inception_weights, tmp_path, monkeypatch, capsys):
    net = fid.load_feature_network(fake_inception_weights)
    assert isinstance(net, fid.InceptionFeatureNetwork) and not net.training
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    feats = fid.extract_features(net, [x])
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
    assert "is not byte-identical to pt_inception-2015-12-05-6726825d.pth" in capsys.readouterr().err

    # Found where pytorch-fid caches it, without any argument.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / fid.FID_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.symlink_to(fake_inception_weights)
    again = fid.load_feature_network(None)
    np.testing.assert_allclose(fid.extract_features(again, [x]), feats, rtol=1e-5, atol=1e-6)
