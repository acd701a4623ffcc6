"""Quality and fingerprint metrics of a scalable network (the original `fid_watermark_accuracy_30k`).

* FID: Frechet distance between N generated and N real images under the FID feature network
  (`ganprint.fid`: Inception weights given by path or found in pytorch-fid's cache; a stand-in
  network for tests and relative comparisons). Generated images are scored as saved: 8-bit.
* bit accuracy: the decoder's mean bit accuracy on the same N generated images, on the float
  outputs (as the paper) and on the images rounded to 8 bits (as PNG files hold them).

Generated images use fresh random z and c drawn from `torch.Generator().manual_seed(seed)`, batch by
batch (z then c); an exported fingerprinted model uses its own fingerprint, and has no decoder, so
only its FID is measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterator

import torch

from ..fid import FeatureNetwork, FeatureStatistics, fid_from_sources, to_uint8
from .network import ScalableNetwork, from_unit, quantize_unit, to_unit


@dataclass
class MetricResult:
    num_images: int
    fid: float | None
    feature_network: str | None
    bit_accuracy: float | None  # float outputs
    bit_accuracy_uint8: float | None  # 8-bit images, as saved

    def to_dict(self) -> dict:
        return asdict(self)


class _Counter:
    def __init__(self) -> None:
        self.hits = self.hits8 = self.bits = 0


def generated_batches(network: ScalableNetwork, count: int, batch_size: int = 64, seed: int = 0,
                      counter: _Counter | None = None) -> Iterator[torch.Tensor]:  # fmt: skip
    """Float [0, 1] batches of `count` generated images; with `counter`, also count the bits F reads."""
    g = torch.Generator().manual_seed(seed)
    cfg = network.config
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        z = torch.randn(n, cfg.z_dim, generator=g)
        c = torch.randint(0, 2, (n, cfg.fingerprint_size), generator=g).float()
        if network.is_fingerprinted:
            c = network.fingerprint.expand(n, -1)
        with torch.no_grad():
            raw = network.G(z.to(network.device), None if network.is_fingerprinted else c.to(network.device))
            images = to_unit(raw)
            if counter is not None and network.F is not None:
                logits = network.F(raw)[1].cpu()  # the float outputs, unclamped
                logits8 = network.F(from_unit(quantize_unit(images)))[1].cpu()
                counter.hits += int(((logits > 0).float() == c).sum())
                counter.hits8 += int(((logits8 > 0).float() == c).sum())
                counter.bits += c.numel()
        yield images.cpu()


def compute_metrics(network: ScalableNetwork, num_images: int, real_data: str | None = None,
                    feature_network: FeatureNetwork | None = None, batch_size: int = 64, seed: int = 0,
                    progress: bool = False, real_stats: FeatureStatistics | None = None) -> MetricResult:  # fmt: skip
    """FID (when `feature_network` and `real_data` or `real_stats` are given) and bit accuracy."""
    counter = _Counter()
    fid = None
    batches = generated_batches(network, num_images, batch_size, seed, counter)
    if feature_network is not None and (real_data is not None or real_stats is not None):
        fid = fid_from_sources((to_uint8(b) for b in batches), real_data or "", num_images, feature_network,
                               resolution=network.config.resolution, batch_size=batch_size, seed=seed,
                               progress=progress, real_stats=real_stats)  # fmt: skip
    else:
        for _ in batches:
            pass
    acc = counter.hits / counter.bits if counter.bits else None
    acc8 = counter.hits8 / counter.bits if counter.bits else None
    name = getattr(feature_network, "name", None) if fid is not None else None
    return MetricResult(num_images, fid, name, acc, acc8)
