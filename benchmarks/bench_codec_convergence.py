"""How fast a codec trains from scratch on this machine: wall time to held-out bit accuracy >= 0.99
at PSNR >= 35 dB, at 32x32 and 100 bits, with a fixed seed.

It trains with the shipped model's recipe settings on the recipe's training set (built if missing)
and reads the held-out evaluations of stats.jsonl (every --eval-every steps, through 8-bit rounding).

Usage: python benchmarks/bench_codec_convergence.py [--steps 2000] [--arch ganprint|original]
           [--train-zip runs/codec-32-recipe/train.zip] [--out runs/bench-convergence]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from ganprint.codec.train import CodecTrainOptions, train_codec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--arch", default="ganprint", choices=["ganprint", "original"])
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--train-zip", default=str(ROOT / "runs/codec-32-recipe/train.zip"))
    parser.add_argument("--out", default=str(ROOT / "runs/bench-convergence"))
    parser.add_argument("--accuracy", type=float, default=0.99)
    parser.add_argument("--psnr", type=float, default=35.0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    if not Path(args.train_zip).exists():
        Path(args.train_zip).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "recipes/codec-32/make_training_set.py"), args.train_zip], check=True)
    run = train_codec(
        CodecTrainOptions(
            data_dir=args.train_zip, output_dir=args.out, arch=args.arch, steps=args.steps,
            eval_every=args.eval_every, snapshot_every=10**9, seed=0, progress=False,
        )
    )  # fmt: skip
    print(f"{args.arch} codec, 32 px, 100 bits, batch 64, seed 0, torch threads {torch.get_num_threads()}")
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
