"""How fast a codec trains from scratch on this machine: wall time to held-out bit accuracy >= 0.99
at PSNR >= 35 dB, at 32x32 and 100 bits, with a fixed seed.

It trains with the trainer's default settings on a small dataset: --images images (default 3,000,
"a few thousand", drawn with seed 0) of the shipped model's training set (built if missing), and reads the
held-out evaluations of stats.jsonl (every --eval-every steps, through 8-bit rounding).

Usage: python benchmarks/bench_codec_convergence.py [--steps 2000] [--arch ganprint|original]
           [--images 3000] [--train-zip runs/codec-32-recipe/train.zip] [--out runs/bench-convergence]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import random
import sys
import zipfile
from pathlib import Path

import torch

from ganprint.codec.train import CodecTrainOptions, train_codec

ROOT = Path(__file__).resolve().parents[1]


def _subset_zip(source: str, target: str, count: int) -> None:
    """Copy `count` images of a zip, drawn with a fixed seed (the recipe's zip holds photos first)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
        members = [m for m in src.namelist() if m.lower().endswith(".png")]
        members = random.Random(0).sample(members, min(count, len(members)))
        for member in members:
            dst.writestr(member, src.read(member))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--arch", default="ganprint", choices=["ganprint", "original"])
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--train-zip", default=str(ROOT / "runs/codec-32-recipe/train.zip"))
    parser.add_argument("--out", default=str(ROOT / "runs/bench-convergence"))
    parser.add_argument("--images", type=int, default=3000, help="training images (0: the whole zip)")
    parser.add_argument("--accuracy", type=float, default=0.99)
    parser.add_argument("--psnr", type=float, default=35.0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    if not Path(args.train_zip).exists():
        Path(args.train_zip).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "recipes/codec-32/make_training_set.py"), args.train_zip], check=True)
    data = args.train_zip
    if args.images:
        data = str(Path(args.out) / f"subset-{args.images}.zip")
        _subset_zip(args.train_zip, data, args.images)
    run = train_codec(
        CodecTrainOptions(
            data_dir=data, output_dir=args.out, arch=args.arch, steps=args.steps,
            eval_every=args.eval_every, snapshot_every=10**9, seed=0, progress=False,
        )
    )  # fmt: skip
    print(f"{args.arch} codec, 32 px, 100 bits, batch 64, seed 0, {args.images or 'all'} training images, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'step':>6}{'minutes':>9}{'held-out acc':>14}{'PSNR':>7}")
    reached = None
    for line in (run / "stats.jsonl").read_text().splitlines():
        s = json.loads(line)
        print(f"{s['step']:>6}{s['time/seconds'] / 60:>9.1f}{s['val/bit_accuracy']:>14.4f}{s['val/psnr']:>7.1f}")
        if reached is None and s["val/bit_accuracy"] >= args.accuracy and s["val/psnr"] >= args.psnr:
            reached = s
    if reached:
        print(
            f"reached bit accuracy >= {args.accuracy} at PSNR >= {args.psnr} dB after {reached['step']} steps, "
            f"{reached['time/seconds'] / 60:.1f} minutes"
        )
    else:
        print(f"did not reach bit accuracy >= {args.accuracy} at PSNR >= {args.psnr} dB in {args.steps} steps")


if __name__ == "__main__":
    main()
