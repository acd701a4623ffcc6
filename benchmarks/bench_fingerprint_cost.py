"""What scalable fingerprinting costs in sample quality: the Frechet distance of a scalable network's
images (fresh random fingerprints) against the real images, next to that of an unfingerprinted GAN
of the same widths and preset (`ganprint gan train`) trained on the same data for the same time.

Both sets are scored the same way: --num-images images as saved (8-bit), the same real images,
under the same feature network (the project's stand-in by default, docs/fid.md: relative
comparisons only; give Inception weights with --feature-network PATH for FIDs comparable with
published ones). Prints both distances, their difference and their ratio, with each model's
training length as its config.json records it.

The shipped `gan-32` (recipes/gan-32) is the default baseline; benchmarks/bench_fidelity.py adds
the classifier's measures (class coverage, precision/recall) and several seeds per arm.

Usage (or train a baseline of your own, about 45 minutes on one thread):
  ganprint gan train --data fashion-mnist-32.zip --preset cpu32 --gamma 0.1 --total-kimg 410 --seed 0 \
      --output-dir runs/baseline
  python benchmarks/bench_fingerprint_cost.py --scalable-network scalable-32 \
      --baseline runs/baseline/00000-gan-cpu32-32px --data fashion-mnist-32.zip [--num-images 10000]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ganprint import fid
from ganprint.errors import GanprintError
from ganprint.gan.network import GanNetwork
from ganprint.io import atomic_write_json
from ganprint.scalable.metrics import compute_metrics
from ganprint.scalable.network import ScalableNetwork, resolve_network_dir


def gan_batches(net: GanNetwork, count: int, batch_size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for start in range(0, count, batch_size):
        z = torch.randn(min(batch_size, count - start), net.config.z_dim, generator=g)
        yield fid.to_uint8(net.generate(z).cpu())


def training_info(network: str) -> dict:
    config = json.loads((resolve_network_dir(network) / "config.json").read_text())
    return config.get("training", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scalable-network", default="scalable-32")
    parser.add_argument("--baseline", default="gan-32",
                        help="unfingerprinted GAN: the shipped gan-32 (default), a run folder or a model folder")
    parser.add_argument("--data", required=True, help="the real images both were trained on")
    parser.add_argument("--num-images", type=int, default=10_000)
    parser.add_argument("--feature-network", default="stand-in", help="'stand-in' or Inception weights path")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    t0 = time.time()
    scalable = ScalableNetwork.from_pretrained(args.scalable_network, device=args.device)
    baseline = GanNetwork.from_pretrained(args.baseline, device=args.device)
    if scalable.config.resolution != baseline.config.resolution:
        raise GanprintError(f"the networks make {scalable.config.resolution} and {baseline.config.resolution} px images")
    net = fid.load_feature_network(args.feature_network, device=args.device)
    reals = fid.real_statistics(args.data, args.num_images, net, resolution=scalable.config.resolution, seed=args.seed)
    fingerprinted = compute_metrics(scalable, args.num_images, feature_network=net, seed=args.seed, real_stats=reals)
    plain = fid.fid_from_sources(gan_batches(baseline, args.num_images, 64, args.seed), args.data, args.num_images, net,
                                 real_stats=reals)  # fmt: skip
    results = {
        "feature_network": net.name, "num_images": args.num_images, "data": args.data,
        "scalable": {"network": args.scalable_network, "frechet": fingerprinted.fid,
                     "bit_accuracy_uint8": fingerprinted.bit_accuracy_uint8, "training": training_info(args.scalable_network)},
        "baseline": {"network": args.baseline, "frechet": plain, "training": training_info(args.baseline)},
        "difference": fingerprinted.fid - plain, "ratio": fingerprinted.fid / plain, "seconds": time.time() - t0,
    }  # fmt: skip
    print(f"Frechet distance ({net.name}, {args.num_images} images each, 8-bit, against {args.data}):")
    for key in ("scalable", "baseline"):
        r = results[key]
        print(f"  {key:<9} {r['frechet']:8.3f}   {r['network']}  (trained {r['training'].get('kimg', '?')} kimg)")
    print(f"  fingerprinted - baseline = {results['difference']:+.3f}, ratio {results['ratio']:.3f}")
    if args.json:
        atomic_write_json(args.json, results)


if __name__ == "__main__":
    try:
        main()
    except GanprintError as e:
        raise SystemExit(f"error: {e}") from None
