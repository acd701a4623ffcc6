"""Training speed of the GAN (`ganprint gan train`) by memory layout and precision, interleaved.

Short real training runs of the cpu32 preset (the transfer experiment's GAN) cycle through the
variants, so that a machine whose speed drifts affects all alike; each run's speed is read from its
stats.jsonl ticks after the first (images per second of the training loop, without set-up and
snapshots). The baseline is fp32 in the NCHW layout (`channels_last=False`, the layout before NHWC
became the CPU default); the other variants are printed as speed ratios against the baseline run
of the same round:

    fp32-nchw   fp32, NCHW weights and maps (baseline)
    fp32-nhwc   fp32, channels-last (the default on a CPU)
    bf16-nhwc   bfloat16 autocast, channels-last (`--precision bf16`)

Usage: python benchmarks/bench_gan_speed.py [--rounds 3] [--kimg 1.6] [--threads 1] [--jobs 1]
           [--data fashion-mnist:train]

--jobs N runs N copies of each variant side by side (the transfer experiment trains three GANs
with one thread each on two cores), reporting their mean speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from ganprint.gan.train import GanTrainOptions, train_gan

VARIANTS = {"fp32-nchw": ("fp32", False), "fp32-nhwc": ("fp32", True), "bf16-nhwc": ("bf16", True)}
BASELINE = "fp32-nchw"


def run_speed(data: str, out: Path, variant: str, kimg: float, threads: int) -> float:
    """Images per second of one short run, over its ticks after the first."""
    torch.set_num_threads(threads)
    precision, channels_last = VARIANTS[variant]
    options = GanTrainOptions(data=data, output_dir=str(out), preset="cpu32", total_kimg=kimg, tick_kimg=kimg / 5,
                              snapshot_kimg=0, precision=precision, channels_last=channels_last, progress=False)  # fmt: skip
    run = train_gan(options)
    ticks = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    speeds = [t["speed/images_per_second"] for t in ticks[1:] if "speed/images_per_second" in t]
    return statistics.median(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist:train")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant, cycling through them")
    parser.add_argument("--kimg", type=float, default=1.6, help="length of each run (100 steps of 16 images)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (the transfer experiment: 1)")
    parser.add_argument("--jobs", type=int, default=1, help="copies of each run side by side (the transfer experiment: 3)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := [v for v in variants if v not in VARIANTS]:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if BASELINE not in variants:
        variants.insert(0, BASELINE)
    speeds: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for r in range(args.rounds):
            for variant in variants:
                futures = [pool.submit(run_speed, args.data, Path(tmp) / f"{variant}-{r}-{j}", variant, args.kimg,
                                       args.threads) for j in range(args.jobs)]  # fmt: skip
                speed = statistics.mean(f.result() for f in futures)
                speeds[variant].append(speed)
                print(f"round {r} {variant}: {speed:.1f} images/s per run ({args.jobs} side by side)", flush=True)
    summary = []
    for variant in variants:
        ratios = [s / b for s, b in zip(speeds[variant], speeds[BASELINE])]
        summary.append(f"{variant} {statistics.median(speeds[variant]):.1f} images/s, x{statistics.median(ratios):.2f} "
                       f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
    print(f"median per variant, speed ratio to {BASELINE} in the same round; {args.threads} thread(s), "
          f"{args.jobs} side by side:\n  " + "\n  ".join(summary))  # fmt: skip


if __name__ == "__main__":
    main()
