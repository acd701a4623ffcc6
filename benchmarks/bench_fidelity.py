"""Sample fidelity of GANs against their real training images, arm by arm, seeds pooled.

Each --arm NAME=NET[,NET...] is one training recipe over several seeds (model folders, run folders
or shipped names; GAN or scalable networks). Every network generates --num-images images (8-bit, as
saved; scalable networks draw a fresh fingerprint per image), scored against the same number of
real images of --data through the same pipeline (ganprint.evaluation.fidelity): Frechet distance
under the stand-in network and under fashion-classifier-32's features, the classifier's class
shares against the real ones (worst factor), precision/recall/density/coverage (prdc, k=5, on 5,000
classifier features each), and for scalable networks the bit accuracy of their decoder on the same
images as saved (8-bit). Prints one row per network, then each arm's mean and spread (std over seeds)
and its ratio to the first arm's mean. --frontier draws what issue 23 asks for at once: each
fingerprinted network's stand-in Frechet distance over the first arm's mean against its bit accuracy,
with the target corner (<= 1.3x at >= 0.99) shaded. --reuse takes an earlier --json, so adding a
network to a comparison generates only that one.

  python benchmarks/bench_fidelity.py --data fashion-mnist-32.zip \
      --arm gan-32=runs/gan-s0,runs/gan-s1,runs/gan-s2 --arm scalable-32=runs/sc-s0,runs/sc-s1,runs/sc-s2 \
      [--num-images 10000] [--json fidelity.json] [--plot docs/images/class-coverage.png] \
      [--frontier docs/images/fidelity-frontier.png]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ganprint.evaluation.fashion_classifier import CLASS_NAMES, FashionClassifier
from ganprint.evaluation.fidelity import compare, generator_batches, image_features
from ganprint.fid import real_image_batches
from ganprint.io import atomic_path, atomic_write_json
from ganprint.scalable.metrics import BitCounter, uint8_bit_accuracy

COLUMNS = ("frechet_stand_in", "frechet_classifier", "worst_class_factor", "precision", "recall", "density", "coverage",
           "bit_accuracy_uint8")
TARGET_RATIO, TARGET_BITS = 1.3, 0.99  # issue 23


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


def cell(value: float | None, spec: str) -> str:
    """A table cell 12 wide; '-' for what was not measured (a GAN has no bits to read)."""
    return f"{'-':>12}" if value is None or np.isnan(value) else f"{value:>12{spec}}"


def plot_frontier(rows: dict, base_arm: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    base = np.mean([r["frechet_stand_in"] for r in rows[base_arm]])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    points = {arm: [(r["bit_accuracy_uint8"], r["frechet_stand_in"] / base) for r in reports
                    if r.get("bit_accuracy_uint8") is not None] for arm, reports in rows.items()}  # fmt: skip
    every = [p for arm_points in points.values() for p in arm_points] or [(TARGET_BITS, TARGET_RATIO)]
    left, top = min(0.9, min(x for x, _ in every) - 0.01), max(2 * TARGET_RATIO, 1.3 * max(y for _, y in every))
    ax.set_xlim(left, 1.003)
    ax.set_ylim(0.8, top)
    ax.add_patch(matplotlib.patches.Rectangle((TARGET_BITS, 0.8), 1.003 - TARGET_BITS, TARGET_RATIO - 0.8,
                                              color="0.88", zorder=0, label="target"))  # fmt: skip
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    for arm, arm_points in points.items():
        if arm_points:
            ax.scatter(*zip(*arm_points), label=f"{arm} ({len(arm_points)})", s=36, zorder=3)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks([t for t in (1, 1.3, 2, 3, 5, 10, 20) if t < top])
    ax.set_xlabel("bit accuracy of the decoder on 8-bit images")
    ax.set_ylabel(f"Frechet distance (stand-in) / {base_arm}'s mean")
    ax.set_title(f"What fingerprinting costs (target: <= {TARGET_RATIO}x at >= {TARGET_BITS} bits, shaded)",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the real training images (e.g. the 32 px Fashion-MNIST zip)")
    parser.add_argument("--arm", type=parse_arm, action="append", required=True, help="NAME=NET[,NET...]")
    parser.add_argument("--num-images", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0, help="latents and fingerprints of the generated images")
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, help="bar chart of the class shares (PNG)")
    parser.add_argument("--frontier", default=None, help="Frechet ratio against bit accuracy, per network (PNG)")
    parser.add_argument("--reuse", default=None, help="an earlier --json: its networks measured with the same --data, "
                        "--num-images and --seed are not generated again")  # fmt: skip
    args = parser.parse_args()
    earlier = {}
    if args.reuse:
        try:
            with open(args.reuse) as f:
                old = json.load(f)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: --reuse {args.reuse}: {exc}") from None
        if (old["data"], old["num_images"], old.get("seed", 0)) == (args.data, args.num_images, args.seed):
            earlier = {r["network"]: r for reports in old["networks"].values() for r in reports}
        else:
            print(f"--reuse {args.reuse}: measured with other --data, --num-images or --seed; not reused")

    t0 = time.time()
    classifier = FashionClassifier.from_pretrained()
    n = args.num_images
    real = image_features(real_image_batches(args.data, n, 32, batch_size=250), classifier, n, progress=True, desc="real")
    rows: dict[str, list[dict]] = {}
    print(f"{'arm':<16} {'network':<44} " + " ".join(f"{c[:12]:>12}" for c in COLUMNS))
    for arm, nets in args.arm:
        for net in nets:
            if net in earlier and "bit_accuracy_uint8" in earlier[net]:
                report = earlier[net]
            else:
                counter = BitCounter()
                gen = image_features(generator_batches(net, n, args.seed, counter=counter), classifier, n,
                                     progress=True, desc=net[-30:])  # fmt: skip
                report = compare(real, gen, n).to_dict()
                report["network"], report["bit_accuracy_uint8"] = net, uint8_bit_accuracy(counter)
            rows.setdefault(arm, []).append(report)
            print(f"{arm:<16} {net[-44:]:<44} " + " ".join(cell(report[c], ".4f") for c in COLUMNS), flush=True)
    print(f"\nper arm: mean over seeds, std (ddof 1), and the mean's ratio to {args.arm[0][0]}'s")
    column = lambda reports, c: np.array([np.nan if r[c] is None else r[c] for r in reports], dtype=float)  # noqa: E731
    base = {c: column(rows[args.arm[0][0]], c).mean() for c in COLUMNS}
    summary = {}
    for arm, reports in rows.items():
        values = {c: column(reports, c) for c in COLUMNS}
        mean = {c: v.mean() for c, v in values.items()}
        std = {c: v.std(ddof=1) if len(v) > 1 else np.nan for c, v in values.items()}
        ratio = {c: mean[c] / base[c] if base[c] else np.nan for c in COLUMNS}
        summary[arm] = {c: {k: None if np.isnan(x[c]) else float(x[c]) for k, x in
                            (("mean", mean), ("std", std), ("ratio", ratio))} for c in COLUMNS}  # fmt: skip
        label = f"{arm} ({len(reports)})"
        for name, kind, row, spec in ((label, "mean", mean, ".4f"), ("", "std", std, ".4f"),
                                      ("", "ratio", ratio, ".2f")):
            print(f"{name:<16} {kind:<44} " + " ".join(cell(row[c], spec) for c in COLUMNS))
    print("\nclass shares (real, then each arm's mean):")
    print(f"{'':<16} " + " ".join(f"{name[:8]:>8}" for name in CLASS_NAMES))
    print(f"{'real':<16} " + " ".join(f"{s:>8.3f}" for s in real.class_shares))
    for arm, reports in rows.items():
        shares = np.mean([r["class_shares"] for r in reports], axis=0)
        print(f"{arm:<16} " + " ".join(f"{s:>8.3f}" for s in shares))
    print(f"\n{n} images per network and {n} real images of {args.data}; {time.time() - t0:.0f} s")
    if args.plot:
        plot_shares(rows, list(real.class_shares), args.plot)
    if args.frontier:
        plot_frontier(rows, args.arm[0][0], args.frontier)
    if args.json:
        atomic_write_json(args.json, {"num_images": n, "data": args.data, "seed": args.seed, "networks": rows,
                                      "arms": summary, "real_class_shares": list(map(float, real.class_shares))})


if __name__ == "__main__":
    main()
