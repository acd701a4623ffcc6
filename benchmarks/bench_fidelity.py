"""Sample fidelity of GANs against their real training images, arm by arm, seeds pooled.

Each --arm NAME=NET[,NET...] is one training recipe over several seeds (model folders, run folders
or shipped names; GAN or scalable networks). Every network generates --num-images images (8-bit, as
saved; scalable networks draw a fresh fingerprint per image), scored against the same number of
real images of --data through the same pipeline (ganprint.evaluation.fidelity): Frechet distance
under the stand-in network and under fashion-classifier-32's features, the classifier's class
shares against the real ones (worst factor), precision/recall/density/coverage (prdc, k=5, on 5,000
classifier features each). Prints one row per network, then each arm's mean and spread (std over
seeds) and its ratio to the first arm's mean.

  python benchmarks/bench_fidelity.py --data fashion-mnist-32.zip \
      --arm gan-32=runs/gan-s0,runs/gan-s1,runs/gan-s2 --arm scalable-32=runs/sc-s0,runs/sc-s1,runs/sc-s2 \
      [--num-images 10000] [--json fidelity.json] [--plot docs/images/class-coverage.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ganprint.evaluation.fashion_classifier import CLASS_NAMES, FashionClassifier
from ganprint.evaluation.fidelity import compare, generator_batches, image_features
from ganprint.fid import real_image_batches
from ganprint.io import atomic_path, atomic_write_json

COLUMNS = ("frechet_stand_in", "frechet_classifier", "worst_class_factor", "precision", "recall", "density", "coverage")


def parse_arm(text: str) -> tuple[str, list[str]]:
    name, _, nets = text.partition("=")
    if not name or not nets:
        raise argparse.ArgumentTypeError(f"--arm {text!r}: expected NAME=NET[,NET...]")
    return name, nets.split(",")


def plot_shares(rows: dict, real: list[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(rows)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / (len(arms) + 1)
    x = np.arange(len(CLASS_NAMES))
    ax.bar(x, real, width, label="real (classifier's histogram)", color="0.3")
    for i, arm in enumerate(arms):
        shares = np.array([r["class_shares"] for r in rows[arm]])
        ax.bar(x + (i + 1) * width, shares.mean(0), width, yerr=shares.std(0) if len(shares) > 1 else None,
               label=f"{arm} ({len(shares)} seed{'s' * (len(shares) > 1)})")  # fmt: skip
    ax.axhline(0.1 / 1.5, color="0.6", lw=0.8, ls=":")
    ax.axhline(0.1 * 1.5, color="0.6", lw=0.8, ls=":")
    ax.set_xticks(x + width * len(arms) / 2, CLASS_NAMES, rotation=20)
    ax.set_ylabel("share of samples")
    ax.set_title("Class shares of generated images (dotted: a factor 1.5 around 10%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # no half-written plot over an old one
        fig.savefig(tmp, dpi=110, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the real training images (e.g. the 32 px Fashion-MNIST zip)")
    parser.add_argument("--arm", type=parse_arm, action="append", required=True, help="NAME=NET[,NET...]")
    parser.add_argument("--num-images", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0, help="latents and fingerprints of the generated images")
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, help="bar chart of the class shares (PNG)")
    args = parser.parse_args()

    t0 = time.time()
    classifier = FashionClassifier.from_pretrained()
    n = args.num_images
    real = image_features(real_image_batches(args.data, n, 32, batch_size=250), classifier, n, progress=True, desc="real")
    rows: dict[str, list[dict]] = {}
    print(f"{'arm':<16} {'network':<44} " + " ".join(f"{c[:12]:>12}" for c in COLUMNS))
    for arm, nets in args.arm:
        for net in nets:
            gen = image_features(generator_batches(net, n, args.seed), classifier, n, progress=True, desc=net[-30:])
            report = compare(real, gen, n).to_dict()
            report["network"] = net
            rows.setdefault(arm, []).append(report)
            print(f"{arm:<16} {net[-44:]:<44} " + " ".join(f"{report[c]:>12.4f}" for c in COLUMNS), flush=True)
    print(f"\nper arm: mean over seeds, std (ddof 1), and the mean's ratio to {args.arm[0][0]}'s")
    base = {c: np.mean([r[c] for r in rows[args.arm[0][0]]]) for c in COLUMNS}
    summary = {}
    for arm, reports in rows.items():
        values = {c: np.array([r[c] for r in reports]) for c in COLUMNS}
        summary[arm] = {c: {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
                            "ratio": float(v.mean() / base[c]) if base[c] else None} for c, v in values.items()}  # fmt: skip
        label = f"{arm} ({len(reports)})"
        print(f"{label:<16} {'mean':<44} " + " ".join(f"{v.mean():>12.4f}" for v in values.values()))
        print(f"{'':<16} {'std':<44} " + " ".join(f"{v.std(ddof=1) if len(v) > 1 else 0:>12.4f}" for v in values.values()))
        print(f"{'':<16} {'ratio':<44} " + " ".join(f"{v.mean() / base[c]:>12.2f}" for c, v in values.items()))
    print("\nclass shares (real, then each arm's mean):")
    print(f"{'':<16} " + " ".join(f"{name[:8]:>8}" for name in CLASS_NAMES))
    print(f"{'real':<16} " + " ".join(f"{s:>8.3f}" for s in real.class_shares))
    for arm, reports in rows.items():
        shares = np.mean([r["class_shares"] for r in reports], axis=0)
        print(f"{arm:<16} " + " ".join(f"{s:>8.3f}" for s in shares))
    print(f"\n{n} images per network and {n} real images of {args.data}; {time.time() - t0:.0f} s")
    if args.plot:
        plot_shares(rows, list(real.class_shares), args.plot)
    if args.json:
        atomic_write_json(args.json, {"num_images": n, "data": args.data, "networks": rows, "arms": summary,
                                      "real_class_shares": list(map(float, real.class_shares))})  # fmt: skip


if __name__ == "__main__":
    main()
