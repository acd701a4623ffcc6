"""Training speed of the GAN (`ganprint gan train`) in fp32 and with `--precision bf16`, interleaved.

Short real training runs of the cpu32 preset (the transfer experiment's GAN) alternate between the
two precisions, so that a machine whose speed drifts affects both alike; each run's speed is read
from its stats.jsonl ticks after the first (images per second of the training loop, without set-up
and snapshots). Prints images/s per run and the median bf16 / fp32 speed ratio.

Usage: python benchmarks/bench_gan_precision.py [--rounds 3] [--kimg 1.6] [--threads 1]
           [--data fashion-mnist:train]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from ganprint.gan.train import PRECISIONS, GanTrainOptions, train_gan


def run_speed(data: str, out: Path, precision: str, kimg: float) -> float:
    """Images per second of one short run, over its ticks after the first."""
    options = GanTrainOptions(data=data, output_dir=str(out), preset="cpu32", total_kimg=kimg, tick_kimg=kimg / 5,
                              snapshot_kimg=0, precision=precision, progress=False)  # fmt: skip
    run = train_gan(options)
    ticks = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    speeds = [t["speed/images_per_second"] for t in ticks[1:] if "speed/images_per_second" in t]
    return statistics.median(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist:train")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each precision, alternating")
    parser.add_argument("--kimg", type=float, default=1.6, help="length of each run (100 steps of 16 images)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the transfer experiment uses 1 per GAN)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speeds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for precision in PRECISIONS:
                speed = run_speed(args.data, Path(tmp) / f"{precision}-{r}", precision, args.kimg)
                speeds[precision].append(speed)
                print(f"round {r} {precision}: {speed:.1f} images/s", flush=True)
    medians = {p: statistics.median(v) for p, v in speeds.items()}
    ratios = [b / f for f, b in zip(speeds["fp32"], speeds["bf16"])]
    print(f"median images/s: fp32 {medians['fp32']:.1f}, bf16 {medians['bf16']:.1f}; "
          f"bf16/fp32 speed ratio per round {', '.join(f'{x:.2f}' for x in ratios)} "
          f"(median {statistics.median(ratios):.2f}); {args.threads} thread(s)")  # fmt: skip


if __name__ == "__main__":
    main()
