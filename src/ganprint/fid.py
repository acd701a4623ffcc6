"""Frechet distance between two image sets under a feature network (FID with Inception; docs/fid.md).

Feature networks map images (B, 3, H, W) in [0, 1] to feature vectors (B, D):

* `InceptionFeatureNetwork`: the standard FID network, pytorch-fid's InceptionV3 (2048-d pool
  features; inputs resized bilinearly to 299 x 299) with the weights file
  pt_inception-2015-12-05-6726825d.pth. ganprint never downloads: `load_feature_network` takes a
  path, or finds the file where pytorch-fid caches it (torch hub's checkpoints/ folder), and says how
  to supply it otherwise. Values are comparable with pytorch-fid's and, closely, with published FIDs.
* `StandInFeatureNetwork`: a small fixed random convolutional network (weights from a seeded
  numpy RandomState, the same on every machine). For tests and for RELATIVE comparisons between
  models scored with the same seed ("Frechet distance under the stand-in network"); its values are
  not FIDs and not comparable with published numbers.

The distance itself is computed here in float64 from the two feature means and covariances,
d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)), with the trace of the matrix
square root taken from the eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric, so `eigh` is exact
and stable; pytorch-fid's own helper calls a scipy argument that scipy 1.18 removes).
"""

from __future__ import annotations

import hashlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .errors import GanprintError

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
STAND_IN = "stand-in"
FID_WEIGHTS_HELP = (
    f"FID feature network: a path to {FID_WEIGHTS_FILE} [default: pytorch-fid's cache], or "
    f"'{STAND_IN}[:SEED]' for the project's stand-in network (relative comparisons only)."
)


# ----------------------------------------------------------------------------- feature networks


class FeatureNetwork(nn.Module):
    """Images (B, 3, H, W) float in [0, 1] -> features (B, dim). `name` says which network it is."""

    name: str = "features"
    dim: int = 0


class InceptionFeatureNetwork(FeatureNetwork):
    """pytorch-fid's FID InceptionV3: 2048-d final pool features (inputs resized to 299 x 299)."""

    name = "inception-v3-fid"
    dim = 2048

    def __init__(self, inception: nn.Module):
        super().__init__()
        self.inception = inception

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inception(images)[0].flatten(1)


class StandInFeatureNetwork(FeatureNetwork):
    """A fixed random conv net: a deterministic, weight-file-free stand-in for Inception.

    Inputs are resized (bilinear, antialiased) to `input_size`, mapped to [-1, 1] and passed through
    four 3x3 stride-2 convolutions (3 -> 32 -> 64 -> 128 -> 256 channels, LeakyReLU 0.2); the
    features are the spatial means of all four layers (480 values), so both coarse and fine image
    statistics count. Weights are He-normal draws of numpy's RandomState(seed) in layer order
    (RandomState's stream is frozen by numpy), biases zero. For tests and relative comparisons only.
    """

    dim = 32 + 64 + 128 + 256

    def __init__(self, seed: int = 0, input_size: int = 64):
        super().__init__()
        self.seed, self.input_size = seed, input_size
        self.name = f"{STAND_IN}:{seed}"
        rng = np.random.RandomState(seed)
        widths = (3, 32, 64, 128, 256)
        self.convs = nn.ModuleList()
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
            std = np.sqrt(2.0 / (c_in * 9))
            weight = rng.standard_normal((c_out, c_in, 3, 3)) * std
            conv.weight.data.copy_(torch.from_numpy(weight.astype(np.float32)))
            conv.bias.data.zero_()
            conv.requires_grad_(False)
            self.convs.append(conv)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        x = x * 2 - 1
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x.mean(dim=(2, 3)))
        return torch.cat(feats, dim=1)


def default_weights_path() -> Path:
    """Where pytorch-fid's download leaves the weights: <torch hub dir>/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def _how_to_supply() -> str:
    return (
        f"download {FID_WEIGHTS_URL} and either put it at {default_weights_path()} (pytorch-fid's cache) "
        f"or pass its path with --fid-weights; for relative comparisons without it use --fid-weights {STAND_IN}"
    )


@contextmanager
def _local_weights(state_dict: dict) -> Iterator[None]:
    """Make pytorch-fid's builder take `state_dict` instead of downloading its weights."""
    import pytorch_fid.inception as lib

    original = lib.load_state_dict_from_url
    lib.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        yield
    finally:
        lib.load_state_dict_from_url = original


def _load_inception(path: Path) -> InceptionFeatureNetwork:
    try:
        from pytorch_fid.inception import InceptionV3
    except ImportError:
        raise GanprintError("FID with Inception needs the pytorch-fid package: pip install pytorch-fid") from None
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from the file
    except Exception as e:  # unpickling refused, truncated zip, not a torch file, ...
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise GanprintError(f"{path}: not a torch weights file that can be read safely ({detail})") from None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise GanprintError(f"{path}: not a state dict of tensors, so not the FID Inception weights")
    try:
        with _local_weights(state_dict):
            inception = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
    except RuntimeError as e:  # load_state_dict: missing / unexpected keys, wrong shapes
        detail = " ".join(str(e).split())[:200]
        raise GanprintError(f"{path}: not the FID Inception weights ({detail})") from None
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if not digest.startswith(FID_WEIGHTS_SHA256_PREFIX):
        print(
            f"warning: {path} is not byte-identical to {FID_WEIGHTS_FILE} (sha256 {digest[:8]}...); "
            "its distances are not comparable with published FIDs",
            file=sys.stderr,
        )
    return InceptionFeatureNetwork(inception)


def load_feature_network(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FeatureNetwork:
    """The FID feature network, in eval mode on `device`.

    `weights`: None finds pt_inception-2015-12-05-6726825d.pth in pytorch-fid's cache
    (`default_weights_path()`); a path loads that file (torch.load weights_only=True);
    'stand-in' or 'stand-in:SEED' gives `StandInFeatureNetwork(SEED)` (default seed 0). Raises
    GanprintError saying how to supply the weights when they are missing.
    """
    from .device import resolve_device

    text = os.fspath(weights) if weights is not None else None
    if text is not None and (text == STAND_IN or text.startswith(STAND_IN + ":")):
        seed_text = text.partition(":")[2] or "0"
        try:
            seed = int(seed_text)
        except ValueError:
            raise GanprintError(f"--fid-weights {text}: the stand-in seed must be an integer") from None
        network: FeatureNetwork = StandInFeatureNetwork(seed)
    else:
        path = Path(text) if text is not None else default_weights_path()
        if not path.is_file():
            where = f"{path}: no such file" if text is not None else f"the FID Inception weights are not in {path}"
            raise GanprintError(f"{where}; {_how_to_supply()}")
        network = _load_inception(path)
    return network.to(resolve_device(device)).eval()


# ----------------------------------------------------------------------------- features


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] quantized as saving a PNG does (clamp, x 255, round): the uint8 path."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def as_unit_rgb(images: torch.Tensor) -> torch.Tensor:
    """(B, 1 or 3, H, W) uint8 or float -> float RGB in [0, 1], clamped as a saved image would be."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (B, 1 or 3, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        images = images.float() / 255
    else:
        images = images.float().clamp(0, 1)  # as any saved image would be
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


def _iterate_features(
    network: FeatureNetwork, batches: Iterable[torch.Tensor], limit: int | None, progress: bool, desc: str
) -> Iterator[np.ndarray]:
    device = next(network.parameters()).device
    bar = tqdm(total=limit, desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    seen = 0
    try:
        with torch.inference_mode():
            for batch in batches:
                if limit is not None and seen >= limit:
                    break
                if limit is not None:
                    batch = batch[: limit - seen]
                x = as_unit_rgb(batch).to(device)
                feats = network(x).double().cpu().numpy()
                seen += len(feats)
                bar.update(len(feats))
                yield feats
    finally:
        bar.close()
        close = getattr(batches, "close", None)
        if close is not None:  # stop a generator of images as soon as enough were taken
            close()


def extract_features(
    network: FeatureNetwork,
    batches: Iterable[torch.Tensor],
    progress: bool = False,
    limit: int | None = None,
) -> np.ndarray:
    """Features (N, dim) float64 of image batches: (B, C, H, W) float in [0, 1] (clamped) or uint8.

    One-channel images are repeated to three. With `limit`, at most that many images are used.
    """
    chunks = list(_iterate_features(network, batches, limit, progress, "features"))
    if not chunks:
        return np.zeros((0, network.dim))
    return np.concatenate(chunks)


class FeatureStatistics:
    """Count, mean and covariance (unbiased, as np.cov) of features, accumulated batch by batch in float64."""

    def __init__(self, dim: int):
        self.n = 0
        self.mean = np.zeros(dim)
        self._m2 = np.zeros((dim, dim))  # sum of outer products of deviations from the mean

    @classmethod
    def from_features(cls, features: np.ndarray | torch.Tensor) -> "FeatureStatistics":
        feats = _as_matrix(features)
        stats = cls(feats.shape[1])
        stats.update(feats)
        return stats

    def update(self, features: np.ndarray | torch.Tensor) -> None:
        # Chan et al.'s pairwise merge: exact, and stable for features with a large common offset.
        x = _as_matrix(features)
        m = len(x)
        if m == 0:
            return
        mean_b = x.mean(axis=0)
        d = x - mean_b
        m2_b = d.T @ d
        total = self.n + m
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (m / total)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (self.n * m / total)
        self.n = total

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise GanprintError(f"a covariance needs at least 2 images, got {self.n}")
        return self._m2 / (self.n - 1)


def _as_matrix(features: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected features (N, D), got shape {x.shape}")
    return x


def feature_statistics(
    network: FeatureNetwork,
    batches: Iterable[torch.Tensor],
    limit: int | None = None,
    progress: bool = False,
    desc: str = "features",
) -> FeatureStatistics:
    """Feature mean and covariance of image batches, streamed (memory flat in the number of images)."""
    stats = FeatureStatistics(network.dim)
    for feats in _iterate_features(network, batches, limit, progress, desc):
        stats.update(feats)
    return stats


# ----------------------------------------------------------------------------- distance


def frechet_distance_from_moments(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """The Frechet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b), in float64."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape or sigma_a.shape != mu_a.shape * 2:
        raise ValueError(f"mismatched moments: means {mu_a.shape} {mu_b.shape}, covariances {sigma_a.shape} {sigma_b.shape}")
    sigma_a, sigma_b = (sigma_a + sigma_a.T) / 2, (sigma_b + sigma_b.T) / 2
    # tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD matrix.
    w, v = np.linalg.eigh(sigma_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root_a @ sigma_b @ root_a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * tr_covmean
    return float(max(value, 0.0))  # rounding can leave -1e-12 for identical sets


def frechet_distance(
    feats_a: np.ndarray | torch.Tensor | FeatureStatistics, feats_b: np.ndarray | torch.Tensor | FeatureStatistics
) -> float:
    """The Frechet distance between two feature sets (arrays (N, D) or FeatureStatistics)."""
    a = feats_a if isinstance(feats_a, FeatureStatistics) else FeatureStatistics.from_features(feats_a)
    b = feats_b if isinstance(feats_b, FeatureStatistics) else FeatureStatistics.from_features(feats_b)
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature sizes differ: {a.mean.shape[0]} and {b.mean.shape[0]}")
    return frechet_distance_from_moments(a.mean, a.cov, b.mean, b.cov)


# ----------------------------------------------------------------------------- image sets


def _open_real(spec: str | os.PathLike):
    """A dataset made by `ganprint dataset` (its manifest checked) or any `open_source` spec."""
    from .data import open_source
    from .dataset_tool import MANIFEST, open_dataset

    path = Path(os.fspath(spec))
    has_manifest = (path / MANIFEST).is_file() if path.is_dir() else False
    if path.is_file() and path.suffix.lower() == ".zip":
        import zipfile

        try:
            with zipfile.ZipFile(path) as zf:
                has_manifest = MANIFEST in zf.namelist()
        except (zipfile.BadZipFile, OSError):
            has_manifest = False  # open_source reports it
    return open_dataset(path).source if has_manifest else open_source(spec)


def real_image_batches(
    real_source_spec: str | os.PathLike, n: int, resolution: int, batch_size: int = 64, seed: int = 0
) -> Iterator[torch.Tensor]:
    """Batches (B, 3, R, R) in [0, 1] of `n` real images, a seeded random choice (all if fewer).

    Images are read in the order `numpy.random.RandomState(seed).permutation(len(source))`;
    unreadable ones are skipped with a warning and the next ones taken. Raises GanprintError when
    the source has fewer than `n` readable images.
    """
    from .data import iterate_batches

    source = _open_real(real_source_spec)
    order = np.random.RandomState(seed).permutation(len(source)).tolist()
    taken = 0
    for _names, images in iterate_batches(source, resolution, batch_size, order=order):
        images = images[: n - taken]
        taken += len(images)
        yield images
        if taken >= n:
            return
    raise GanprintError(f"{real_source_spec}: only {taken} readable images; FID needs {n}")


def _generated(generate_batches) -> Iterable[torch.Tensor]:
    return generate_batches() if callable(generate_batches) else generate_batches


def real_statistics(
    real_source_spec: str | os.PathLike,
    n: int,
    network: FeatureNetwork,
    resolution: int,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> FeatureStatistics:
    """Feature statistics of `n` real images (see real_image_batches); compute once, reuse per snapshot."""
    batches = real_image_batches(real_source_spec, n, resolution, batch_size, seed)
    return feature_statistics(network, batches, n, progress, desc="FID reals")


def fid_from_sources(
    generate_batches: Iterable[torch.Tensor] | Callable[[], Iterable[torch.Tensor]],
    real_source_spec: str | os.PathLike,
    n: int,
    network: FeatureNetwork,
    *,
    resolution: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
    real_stats: FeatureStatistics | None = None,
) -> float:
    """Frechet distance between `n` generated and `n` real images under `network`.

    `generate_batches`: an iterable (or a function returning one) of image batches, float in [0, 1]
    or uint8 (pass `to_uint8(x)` to score images as saved); only the first `n` images are used.
    Real images: `real_source_spec` (a `ganprint dataset` zip/folder, or any open_source spec),
    brought to `resolution` (default: the generated images' size), a seeded random choice of `n`
    (see `real_image_batches`). `real_stats` (from `real_statistics`) skips reading the reals.
    """
    if n < 2:
        raise GanprintError(f"FID needs at least 2 images per set, got n={n}")
    shapes: list[int] = []

    def remember_size(batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        for batch in batches:
            shapes.append(batch.shape[-1])
            yield batch

    fake = feature_statistics(network, remember_size(_generated(generate_batches)), n, progress, desc="FID fakes")
    if fake.n < n:
        raise ValueError(f"generate_batches gave {fake.n} images; FID needs {n}")
    if real_stats is None:
        size = resolution or (shapes[0] if shapes else None)
        real_stats = real_statistics(real_source_spec, n, network, size, batch_size, seed, progress)
    return frechet_distance(fake, real_stats)


def image_set_resolution(spec: str | os.PathLike) -> int:
    """The shorter side of the first readable image of an image set (the size FID brings both sets to)."""
    from .errors import BadImageError

    source = _open_real(spec)
    for i in range(len(source)):
        try:
            return min(source.image(i).size)
        except BadImageError:
            continue
    raise GanprintError(f"{spec}: no readable image")


def fid_between_image_sets(
    generated_spec: str | os.PathLike,
    real_source_spec: str | os.PathLike,
    n: int,
    network: FeatureNetwork,
    *,
    resolution: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> float:
    """Frechet distance between `n` images of two image sets (folders, zips, `ganprint dataset`s):
    images from a model trained elsewhere against real ones. Both are brought to `resolution`
    (default: the shorter side of the first generated image) and chosen as in real_image_batches."""
    resolution = resolution or image_set_resolution(generated_spec)
    fake = real_image_batches(generated_spec, n, resolution, batch_size, seed)
    return fid_from_sources(fake, real_source_spec, n, network, resolution=resolution, batch_size=batch_size,
                            seed=seed, progress=progress)  # fmt: skip
