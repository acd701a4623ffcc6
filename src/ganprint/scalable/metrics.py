"""Quality and fingerprint metrics of a scalable network (the original `fid_watermark_accuracy_30k`).

* FID: Frechet distance between N generated and N real images under the FID feature network
  (`ganprint.fid`: Inception weights given by path or found in pytorch-fid's cache; a stand-in
  network for tests and relative comparisons). Generated images are scored as saved: 8-bit.
* bit accuracy: the decoder's mean bit accuracy on the same N generated images, on the float
  outputs (as the paper) and on the images rounded to 8 bits (as PNG files hold them); and, 8-bit,
  the accuracy of the worst-read bit position and the 10th percentile over bit positions (a mean
  can hide a tail of bits the code never learned).
* latent share: how much of the images' variation comes from the latent z rather than the code c
  (`latent_share`). A fingerprinted model must vary with z: near 0, the code has taken over the
  content and every model would draw one image whatever z.

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
    latent_share: float | None = None  # z's share of the images' variation (None: an exported model)
    worst_bit_uint8: float | None = None  # 8-bit accuracy of the worst-read bit position
    p10_bit_uint8: float | None = None  # its 10th percentile over bit positions

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def latent_share(G, z_dim: int, c_dim: int, count: int = 16, seed: int = 0, device: str | torch.device = "cpu") -> float:
    """Share of the pixel variance of G(z, c) that z explains: on a `count` x `count` grid of
    latents x codes, var over z at a fixed code against var over c at a fixed latent (both averaged
    over the grid). 1: the code does not change the image; 0: z does not. A healthy fingerprinted
    generator is close to 1 (the code a faint trace); under 0.5 the code decides the content."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(count, z_dim, generator=g)
    c = torch.randint(0, 2, (count, c_dim), generator=g).float()
    zz, cc = z.repeat_interleave(count, 0), c.repeat(count, 1)  # row i: latent i with every code
    images = torch.cat([G(zz[s : s + 64].to(device), cc[s : s + 64].to(device)).float().cpu()
                        for s in range(0, count * count, 64)])  # fmt: skip
    grid = images.reshape(count, count, -1)  # (latent, code, pixels)
    var_z = grid.var(dim=0).mean().item()  # the latent changes, the code is fixed
    var_c = grid.var(dim=1).mean().item()  # the code changes, the latent is fixed
    return var_z / (var_z + var_c) if var_z + var_c > 0 else 1.0


def describe_latent_share(share: float, label: str = "latent share") -> str:
    """`latent share 0.983`, with a warning when the code rather than z decides the images."""
    return f"{label} {share:.3f}" + (" (the code decides the content, not z)" if share < 0.5 else "")


class BitCounter:
    """What F read right in generated images: float images' hits, and 8-bit hits per bit position."""

    def __init__(self) -> None:
        self.hits = self.bits = 0
        self.per_bit8: torch.Tensor | None = None  # 8-bit hits per bit position


def generated_batches(network: ScalableNetwork, count: int, batch_size: int = 64, seed: int = 0,
                      counter: BitCounter | None = None) -> Iterator[torch.Tensor]:  # fmt: skip
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
                right8 = ((logits8 > 0).float() == c).float().sum(0)
                counter.per_bit8 = right8 if counter.per_bit8 is None else counter.per_bit8 + right8
                counter.bits += c.numel()
        yield images.cpu()


def uint8_bit_accuracy(counter: BitCounter) -> float | None:
    """The share of bits read right from the 8-bit images (None when nothing was read)."""
    return None if counter.per_bit8 is None else float(counter.per_bit8.sum()) / counter.bits


def compute_metrics(network: ScalableNetwork, num_images: int, real_data: str | None = None,
                    feature_network: FeatureNetwork | None = None, batch_size: int = 64, seed: int = 0,
                    progress: bool = False, real_stats: FeatureStatistics | None = None) -> MetricResult:  # fmt: skip
    """FID (when `feature_network` and `real_data` or `real_stats` are given) and bit accuracy."""
    counter = BitCounter()
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
    acc8 = uint8_bit_accuracy(counter)
    name = getattr(feature_network, "name", None) if fid is not None else None
    cfg = network.config
    share = None if network.is_fingerprinted else latent_share(network.G, cfg.z_dim, cfg.fingerprint_size,
                                                               seed=seed, device=network.device)  # fmt: skip
    worst = p10 = None
    if counter.per_bit8 is not None:
        per_bit = counter.per_bit8 / (counter.bits / counter.per_bit8.numel())
        worst, p10 = float(per_bit.min()), float(per_bit.quantile(0.1))
    return MetricResult(num_images, fid, name, acc, acc8, share, worst, p10)
