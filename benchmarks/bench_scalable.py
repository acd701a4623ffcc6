"""Speed of scalable fingerprinting on this machine, and the time to a working fingerprint.

Measured (random weights: speed does not depend on the weight values):
  generate   G forward, batch 64, stored noise, no autograd: images/s (generation throughput)
  train      one full training step at the preset's batch (G(z,c) and G(z,c') in one pass, D on G's
             images, F, all losses, both backward passes, three Adam steps, EMA; R1 every 16th step
             counted at 1/16 of its cost): images/s and kimg/hour
  fused      the generator forward with the grouped (fused) modulated convolution instead of the fast
             form (scale activations, one shared convolution, scale outputs): the ratio fast/fused
  peak MB    peak RSS growth of the child process that ran the phase (model, optimizer, activations)
for the presets cpu32 and cpu64. Each phase runs in a fresh interpreter (ru_maxrss only grows).

--from-scratch runs the whole recipe of a cpu32 network within --minutes (default 60): it trains
the preset on Fashion-MNIST (or --data) with metrics every 2 kimg (1024 generated images, float and
8-bit) until --tune-minutes (default 3) are left, then tunes the decoder on the final snapshot
(`ganprint scalable tune-decoder`, --tune-kimg, default 40) and reports the 8-bit bit accuracy after
training and after tuning, with the minutes each took (training stops early if it reaches 0.99).

Usage: python benchmarks/bench_scalable.py [--quick] [--threads 2] [--presets cpu32 cpu64]
           [--from-scratch] [--minutes 60] [--tune-minutes 3] [--tune-kimg 40] [--data fashion-mnist]
           [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULT_MARK = "@@result "


def _child(phase: str, preset: str, seconds: float, threads: int) -> dict:
    """Run one phase in a fresh interpreter; returns its result dict."""
    cmd = [sys.executable, __file__, "--phase", phase, "--preset", preset, "--seconds", str(seconds),
           "--threads", str(threads)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith(RESULT_MARK))
    return json.loads(line[len(RESULT_MARK) :])


def _timed(fn, seconds: float, min_runs: int = 2) -> float:
    """Seconds per call: one warm-up call, then calls until `seconds` have passed (at least min_runs)."""
    fn()
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < seconds:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs


def run_phase(phase: str, preset_name: str, seconds: float, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    from ganprint.scalable.config import preset
    from ganprint.stylegan import Decoder, Discriminator, Generator

    torch.set_num_threads(threads)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    p = preset(preset_name)
    cfg, B = p.network, p.training.batch_size
    torch.manual_seed(0)
    G = Generator(cfg.generator_config())
    L, Z = cfg.fingerprint_size, cfg.z_dim
    result: dict = {"phase": phase, "preset": preset_name, "threads": threads}
    if phase in ("generate", "fused"):
        if phase == "fused":
            for m in G.modules():
                if hasattr(m, "fused"):
                    m.fused = True
        z, c = torch.randn(64, Z), torch.randint(0, 2, (64, L)).float()

        def forward():
            with torch.no_grad():
                G(z, c)

        result["images_per_second"] = 64 / _timed(forward, seconds)
    elif phase == "train":
        D, Fd = Discriminator(cfg.discriminator_config()), Decoder(cfg.decoder_config(), Z, L)
        D.mbstd.group_size = min(cfg.mbstd_group, B)
        opts = [torch.optim.Adam(m.parameters(), lr=0.002, betas=(0.0, 0.99)) for m in (G, D, Fd)]
        reals = torch.rand(B, 3, cfg.resolution, cfg.resolution) * 2 - 1
        gf = [*G.parameters(), *Fd.parameters()]
        G_ema = Generator(cfg.generator_config()).requires_grad_(False)

        def step(r1: bool):
            z, c, c2 = torch.randn(B, Z), torch.randint(0, 2, (B, L)).float(), torch.randint(0, 2, (B, L)).float()
            fakes = G(torch.cat([z, z]), torch.cat([c, c2]), noise_mode="random")
            fake = fakes[:B]
            z_hat, logits = Fd(fake)
            loss = (F.softplus(-D(fake)).mean() + 2 * (fake - fakes[B:]).square().mean() + (z_hat - z).square().mean()
                    + 2 * F.binary_cross_entropy_with_logits(logits, c))  # fmt: skip
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward(inputs=gf)
            opts[0].step()
            opts[2].step()
            x = reals.detach().requires_grad_(r1)
            out = D(torch.cat([x, fake.detach()]))
            loss_d = F.softplus(out[B:]).mean() + F.softplus(-out[:B]).mean()
            if r1:
                (g,) = torch.autograd.grad(out[:B].sum(), x, create_graph=True)
                loss_d = loss_d + g.square().sum((1, 2, 3)).mean() * 8
            loss_d.backward()
            opts[1].step()
            with torch.no_grad():
                for a, b in zip(G_ema.parameters(), G.parameters()):
                    a.lerp_(b, 0.01)

        plain = _timed(lambda: step(False), seconds)
        with_r1 = _timed(lambda: step(True), max(1.0, seconds / 4), min_runs=1)
        per_step = plain + (with_r1 - plain) / 16
        result["images_per_second"] = B / per_step
        result["kimg_per_hour"] = B / per_step * 3.6
        result["batch"] = B
    result["peak_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    return result


def from_scratch(data: str, minutes: float, threads: int, tune_minutes: float = 3.0, tune_kimg: float = 40.0,
                 target: float = 0.99) -> dict:  # fmt: skip
    """Train cpu32 from scratch until `tune_minutes` of `minutes` are left (or 8-bit bit accuracy
    >= target), then tune the decoder; accuracies and minutes of both parts."""
    import torch

    from ganprint.scalable.config import preset
    from ganprint.scalable.network import ScalableNetwork
    from ganprint.scalable.train import TrainOptions, train_scalable
    from ganprint.scalable.tune_decoder import tune_decoder

    torch.set_num_threads(threads)
    batch = preset("cpu32").training.batch_size
    out = Path(tempfile.mkdtemp(prefix="bench-scalable-"))
    start = time.time()
    train_seconds = max(0.0, minutes - tune_minutes) * 60
    reached: dict = {}

    def latest() -> tuple[float, float] | None:
        """(8-bit bit accuracy, kimg) of the newest metric line, or None before the first."""
        files = list(out.glob("*/stats.jsonl"))
        rows = [json.loads(line) for line in files[0].read_text().splitlines()] if files else []
        rows = [r for r in rows if "metrics/bit_accuracy_uint8" in r]
        return (rows[-1]["metrics/bit_accuracy_uint8"], rows[-1]["step"] * batch / 1000) if rows else None

    def should_stop(step: int) -> bool:
        if step % round(2000 / batch):  # check right after each metric line (every 2 kimg)
            return time.time() - start > train_seconds
        now = latest()
        if now and now[0] >= target and "minutes" not in reached:
            reached.update(minutes=(time.time() - start) / 60, kimg=now[1], bit_accuracy_uint8=now[0])
            return True
        return time.time() - start > train_seconds

    options = TrainOptions(data=data, output_dir=str(out), preset="cpu32", total_kimg=10_000, metrics_kimg=2,
                           metric_images=1024, snapshot_kimg=0, tick_kimg=2, progress=False, seed=0)  # fmt: skip
    run = train_scalable(options, should_stop=should_stop)
    trained = latest()
    train_minutes = (time.time() - start) / 60
    tuning = tune_decoder(ScalableNetwork.from_pretrained(run), kimg=tune_kimg, progress=False)
    return {"target": target, "reached_in_training": bool(reached), **reached, "train_minutes": train_minutes,
            "kimg_trained": trained[1] if trained else None, "after_training_uint8": tuning.bit_accuracy_before,
            "after_tuning_uint8": tuning.bit_accuracy_after, "tune_kimg": tune_kimg,
            "elapsed_minutes": (time.time() - start) / 60, "run": str(run)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Short timings and a 3-minute from-scratch run.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["cpu32", "cpu64"])
    parser.add_argument("--from-scratch", action="store_true", help="Also measure minutes to bit accuracy 0.99.")
    parser.add_argument("--minutes", type=float, default=None, help="Time limit of the from-scratch run [60; quick 3].")
    parser.add_argument("--tune-minutes", type=float, default=None, help="Of those, left for decoder tuning [3; quick 0.5].")
    parser.add_argument("--tune-kimg", type=float, default=None, help="Decoder tuning length [40; quick 1].")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--json", default=None, help="Write the results here too.")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(RESULT_MARK + json.dumps(run_phase(args.phase, args.preset, args.seconds, args.threads)))
        return

    seconds = 3.0 if args.quick else 15.0
    results = []
    print(f"{'preset':8} {'phase':9} {'images/s':>9} {'kimg/h':>7} {'peak MB':>8}")
    for name in args.presets:
        for phase in ("generate", "fused", "train"):
            r = _child(phase, name, seconds, args.threads)
            results.append(r)
            kimg = f"{r['kimg_per_hour']:7.0f}" if "kimg_per_hour" in r else " " * 7
            print(f"{name:8} {phase:9} {r['images_per_second']:9.1f} {kimg} {r['peak_mb']:8.0f}", flush=True)
        fast, fused = (next(r for r in results if r["preset"] == name and r["phase"] == p) for p in ("generate", "fused"))
        print(f"{name:8} fast/fused modulated conv speed ratio: {fast['images_per_second'] / fused['images_per_second']:.2f}")
    report = {"threads": args.threads, "phases": results}
    if args.from_scratch:
        minutes = args.minutes if args.minutes is not None else (3.0 if args.quick else 60.0)
        tune_minutes = args.tune_minutes if args.tune_minutes is not None else (0.5 if args.quick else 3.0)
        tune_kimg = args.tune_kimg if args.tune_kimg is not None else (1.0 if args.quick else 40.0)
        r = from_scratch(args.data, minutes, args.threads, tune_minutes, tune_kimg)
        report["from_scratch"] = r
        verdict = "met" if r["after_tuning_uint8"] >= r["target"] and r["elapsed_minutes"] <= minutes else "not met"
        kimg = f"{r['kimg_trained']:.0f}" if r["kimg_trained"] is not None else "?"
        print(f"from scratch (cpu32): 8-bit bit accuracy {r['after_training_uint8']:.4f} after {r['train_minutes']:.1f} min "
              f"of training ({kimg} kimg), {r['after_tuning_uint8']:.4f} after decoder tuning "
              f"({r['tune_kimg']:g} kimg); {r['elapsed_minutes']:.1f} min in all; target 0.99 within {minutes:g} min: "
              f"{verdict}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
