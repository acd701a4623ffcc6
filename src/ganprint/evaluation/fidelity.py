"""How close a generator's samples are to its real training images: the measures of
benchmarks/bench_fidelity.py (docs/scalable.md, "Fidelity").

Real and generated images go through the same pipeline: the real ones as the GAN's training set
stores them (for Fashion-MNIST: 28 -> 32 px), the generated ones rounded to 8 bits as saved PNGs.
Then, per model:

* Frechet distance under two feature networks: the project's stand-in (a fixed random conv net,
  `ganprint.fid`; sensitive to texture and noise) and the penultimate layer of
  `fashion-classifier-32` (trained on the domain: sensitive to shape and class);
* class shares: the classifier's class histogram of the samples against the same classifier's
  histogram of the real images (its mistakes count on both sides), and the worst factor between
  them over the classes (1.0: every class at its real share);
* precision, recall, density and coverage (Naeem et al. 2020, the `prdc` package: k-nearest-neighbour
  balls around the real and generated classifier features; precision: how many samples look real,
  recall/coverage: how much of the real data the samples reach).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from .. import checkpoint, fid
from ..errors import GanprintError
from .fashion_classifier import CLASS_NAMES, FashionClassifier

NEAREST_K = 5  # prdc's neighbourhood size (the paper's recommended 5)


@dataclass
class Features:
    """What the measures need of one image set."""

    stand_in: fid.FeatureStatistics
    classifier: fid.FeatureStatistics
    classifier_sample: np.ndarray  # the first `prdc_count` classifier features, for precision/recall
    class_counts: np.ndarray  # (10,) images per predicted class

    @property
    def class_shares(self) -> np.ndarray:
        return self.class_counts / max(1, self.class_counts.sum())


@dataclass
class FidelityReport:
    num_images: int
    frechet_stand_in: float
    frechet_classifier: float
    class_shares: list[float]
    real_class_shares: list[float]
    worst_class: str  # the class furthest from its real share
    worst_class_factor: float  # max over classes of max(share / real, real / share); inf if a class is missing
    precision: float
    recall: float
    density: float
    coverage: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def image_features(batches: Iterable[torch.Tensor], classifier: FashionClassifier, count: int,
                   prdc_count: int = 5000, progress: bool = False, desc: str = "features") -> Features:  # fmt: skip
    """Features of `count` images from `batches` (uint8 or [0, 1] float, (B, 1 or 3, H, W))."""
    stand_in = fid.load_feature_network(fid.STAND_IN)
    stats = [fid.FeatureStatistics(stand_in.dim), fid.FeatureStatistics(classifier.config.feature_dim)]
    sample, counts, seen = [], np.zeros(len(CLASS_NAMES), dtype=np.int64), 0
    bar = tqdm(total=count, desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    with torch.inference_mode():
        for batch in batches:
            batch = batch[: count - seen]
            x = fid.as_unit_rgb(batch)
            feats = classifier.features(x)
            counts += np.bincount(classifier.head(feats).argmax(1).numpy(), minlength=len(CLASS_NAMES))
            stats[0].update(stand_in(x).double().numpy())
            stats[1].update(feats.double().numpy())
            if sum(len(s) for s in sample) < prdc_count:
                sample.append(feats.numpy())
            seen += len(batch)
            bar.update(len(batch))
            if seen >= count:
                break
    bar.close()
    if seen < count:
        raise GanprintError(f"{desc}: only {seen} images, {count} needed")
    return Features(stats[0], stats[1], np.concatenate(sample)[:prdc_count], counts)


def compare(real: Features, generated: Features, num_images: int) -> FidelityReport:
    """The report of one generated set against the real one."""
    try:
        import prdc
    except ImportError:
        raise GanprintError("precision/recall need the prdc package: pip install 'ganprint[fidelity]'") from None

    shares, real_shares = generated.class_shares, real.class_shares
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = np.maximum(shares / real_shares, real_shares / shares)
    factors[(shares == 0) & (real_shares == 0)] = 1.0  # a class neither set has
    worst = int(np.argmax(factors))
    n = min(len(real.classifier_sample), len(generated.classifier_sample))
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        pr = prdc.compute_prdc(real.classifier_sample[:n], generated.classifier_sample[:n], nearest_k=NEAREST_K)
    return FidelityReport(
        num_images=num_images,
        frechet_stand_in=fid.frechet_distance(real.stand_in, generated.stand_in),
        frechet_classifier=fid.frechet_distance(real.classifier, generated.classifier),
        class_shares=[round(float(s), 5) for s in shares], real_class_shares=[round(float(s), 5) for s in real_shares],
        worst_class=CLASS_NAMES[worst], worst_class_factor=float(factors[worst]),
        precision=float(pr["precision"]), recall=float(pr["recall"]), density=float(pr["density"]),
        coverage=float(pr["coverage"]),
    )  # fmt: skip


def generator_batches(network: str | os.PathLike, count: int, seed: int = 0, batch_size: int = 250,
                      counter=None) -> Iterator[torch.Tensor]:  # fmt: skip
    """uint8 batches of `count` images of a GAN or scalable network (model or run folder, or shipped
    name); a scalable network draws a fresh random fingerprint per image, and with `counter` (a
    scalable.metrics.BitCounter) counts the bits its decoder reads right."""
    from ..gan.network import KIND as GAN_KIND
    from ..gan.network import GanNetwork
    from ..scalable.metrics import generated_batches
    from ..scalable.network import ScalableNetwork, resolve_network_dir

    kind = checkpoint.read_config(resolve_network_dir(network)).get("kind")
    if kind == GAN_KIND:
        net = GanNetwork.from_pretrained(network)
        g = torch.Generator().manual_seed(seed)
        for start in range(0, count, batch_size):
            yield fid.to_uint8(net.generate(torch.randn(min(batch_size, count - start), net.config.z_dim, generator=g)))
    else:
        for images in generated_batches(ScalableNetwork.from_pretrained(network), count, batch_size, seed, counter):
            yield fid.to_uint8(images)
