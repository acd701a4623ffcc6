"""Throughput and peak memory of the codec, ganprint arch against the original ICCV 2021 arch.

For each resolution (32 and 128 px; 100-bit fingerprints, default CodecConfig widths, random weights:
speed does not depend on the weight values) and each phase:
  train    one full training step (embed, straight-through 8-bit rounding, decode, BCE + MSE,
           backward, Adam step) at batch 64 (32 px) / 16 (128 px), images/s
  embed    embed_folder on N photo-like PNGs at twice the resolution (so preprocessing resizes),
           writing the fingerprinted PNGs and the fingerprints file, images/s end to end
  embed    the same on 4N images: its peak memory should match the N run (streaming stays flat)
  detect   detect_folder on the fingerprinted PNGs of the N run, scored against the embedded bits

Each measured run is a fresh interpreter (this script re-invoked with a hidden --phase), because
ru_maxrss only ever grows within a process. "peak MB" is the peak RSS growth over the child's RSS
just after its imports (so: model, optimizer, activations, I/O buffers), the largest of the repeats.
A child starts with ru_maxrss = the PARENT's peak RSS (Linux carries it over fork/vfork + exec), so
this parent never imports torch: it stays ~20 MB, far below any child's baseline (checked per run).

The machine is noisy, so for each (resolution, phase) the two architectures run alternately (ABBA
order) for R repeats; the table shows the median images/s of each and their RATIO ganprint/original,
which is the figure to quote (slow drift of the machine's speed cancels in it).

Usage: python benchmarks/bench_codec_throughput.py [--quick] [--repeats 3] [--images N] [--batch-size 64]
           [--train-seconds 8] [--train-steps 3] [--resolutions 32 128] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# No torch or ganprint imports at module level: see the docstring (the parent must stay small).

ARCHS = ("ganprint", "original")
THREADS = 2
FINGERPRINT_LENGTH = 100
RESULT_MARK = "@@result "  # prefix of the child's one result line on stdout


def train_batch(resolution: int) -> int:
    """64 images at 32 px, 16 at 128 px: the batch shrinks as the image grows."""
    return max(4, 2048 // resolution)


def images_for(resolution: int, opts) -> int:
    """N for embed/detect: fewer large images keep the runs short, but N is at least one folder
    batch, so that N -> 4N streams 4x more batches of the same size (else memory grows with the batch)."""
    if opts.images:
        return opts.images
    return opts.batch_size * (4 if resolution <= 32 and not opts.quick else 1)


# =============================================================== child side: one measured phase


def rss_mb() -> float:
    """Current resident set size (Linux /proc; elsewhere the peak so far, a safe over-estimate)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def build_codec(arch: str, resolution: int):
    import torch

    from ganprint.codec import CodecConfig, FingerprintCodec

    torch.manual_seed(0)
    config = CodecConfig(arch=arch, resolution=resolution, fingerprint_length=FINGERPRINT_LENGTH)
    return FingerprintCodec(config)


def sample_batch(resolution: int, count: int):
    """Real photo crops (the built-in samples, repeated) as a training batch."""
    import torch

    from ganprint.data import open_source, pil_to_tensor, preprocess

    source = open_source("samples")
    return torch.stack([pil_to_tensor(preprocess(source.image(i % len(source)), resolution)) for i in range(count)])


def phase_train(args) -> dict:
    import torch
    import torch.nn.functional as F

    from ganprint.codec.train import _embed

    codec = build_codec(args.arch, args.resolution).train()
    opt = torch.optim.Adam(codec.parameters(), lr=1e-3 if args.arch == "ganprint" else 1e-4)
    batch = train_batch(args.resolution)
    x = sample_batch(args.resolution, batch)
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        # Mirrors the step of codec/train.py (without the data loader, flips and logging).
        bits = torch.randint(0, 2, (batch, FINGERPRINT_LENGTH), generator=g).float()
        marked = _embed(codec, x, bits, None)
        seen = marked + (torch.round(marked * 255) / 255 - marked).detach()  # straight-through 8-bit
        logits = codec.decoder(seen)
        # train.py weighs the image loss by a schedule; the weight's value does not change the cost.
        loss = F.binary_cross_entropy_with_logits(logits, bits) + 1.0 * F.mse_loss(marked, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: the first step allocates buffers and Adam's state, and picks kernels
    steps, start = 0, time.perf_counter()
    while steps < args.train_steps or time.perf_counter() - start < args.train_seconds:
        step()
        steps += 1
    return {"images": steps * batch, "seconds": time.perf_counter() - start}


def warm_up(codec, resolution: int) -> None:
    """A tiny in-memory batch first, so one-time setup is not charged to the folder's images."""
    import torch

    x = torch.rand(2, 3, resolution, resolution)
    codec.embed(x, torch.zeros(FINGERPRINT_LENGTH))
    codec.decode_logits(x)


def phase_embed(args) -> dict:
    from ganprint.codec.folders import embed_folder

    codec = build_codec(args.arch, args.resolution).eval()
    warm_up(codec, args.resolution)
    start = time.perf_counter()
    summary = embed_folder(codec, args.input, args.output, batch_size=args.batch_size, progress=False)
    return {"images": summary.images, "seconds": time.perf_counter() - start}


def phase_detect(args) -> dict:
    from ganprint.codec.folders import IMAGES_DIR, detect_folder

    codec = build_codec(args.arch, args.resolution).eval()
    warm_up(codec, args.resolution)
    start = time.perf_counter()
    images = Path(args.input) / IMAGES_DIR
    summary = detect_folder(
        codec, images, args.output, expected=args.input, batch_size=args.batch_size, progress=False
    )
    return {"images": summary.images, "seconds": time.perf_counter() - start}


def phase_prepare(args) -> dict:
    """Photo-like PNGs (unmeasured): random crops of the built-in samples, resized, maybe mirrored."""
    from PIL import Image

    from ganprint.data import open_source

    source = open_source("samples")
    photos = [source.image(i) for i in range(len(source))]
    for folder, count, size in args.make:
        rng = random.Random(0)  # the same images in the N and the 4N folder, in the same order
        Path(folder).mkdir(parents=True)
        for i in range(int(count)):
            photo = photos[rng.randrange(len(photos))]
            w, h = photo.size
            side = rng.randint(min(w, h) // 2, min(w, h))
            x, y = rng.randint(0, w - side), rng.randint(0, h - side)
            image = photo.crop((x, y, x + side, y + side)).resize((int(size), int(size)), Image.BICUBIC)
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            image.save(Path(folder) / f"img-{i:05d}.png")
    return {}


PHASES = {"train": phase_train, "embed": phase_embed, "detect": phase_detect, "prepare": phase_prepare}


def run_child(args) -> None:
    inherited = peak_rss_mb()  # the parent's peak, carried over exec; must stay below `base`
    import torch

    torch.set_num_threads(THREADS)
    import ganprint.codec.folders  # noqa: F401  (imports belong to the baseline, not the phase)
    import ganprint.codec.train  # noqa: F401

    base = rss_mb()
    result = PHASES[args.phase](args)
    result.update(peak_mb=peak_rss_mb() - base, base_mb=base, inherited_mb=inherited)
    print(RESULT_MARK + json.dumps(result), flush=True)


# ================================================================ parent side: orchestration


def run_child_process(phase: str, **options) -> dict:
    """Re-invoke this script with --phase in a fresh interpreter; returns the child's result dict."""
    cmd = [sys.executable, os.path.abspath(__file__), "--phase", phase]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        for item in value if isinstance(value, list) else [value]:
            cmd += [flag, *map(str, item if isinstance(item, (list, tuple)) else [item])]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{' '.join(cmd)}\nfailed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len(RESULT_MARK):])
    result["wall"] = time.perf_counter() - started  # start-up included: where the benchmark's time goes
    return result


def run_phase(phase: str, arch: str, resolution: int, **options) -> dict:
    result = run_child_process(phase, arch=arch, resolution=resolution, **options)
    result["ips"] = result["images"] / result["seconds"]
    if result["inherited_mb"] >= result["base_mb"]:
        print(f"warning: {phase} {arch}: inherited peak RSS {result['inherited_mb']:.0f} MB hides the "
              f"child's baseline {result['base_mb']:.0f} MB; its peak MB is not trustworthy", file=sys.stderr)  # fmt: skip
    return result


def interleaved(phase: str, resolution: int, repeats: int, options_for) -> dict:
    """R runs of each arch, alternating in ABBA order so that slow drift hits both alike."""
    runs = {arch: [] for arch in ARCHS}
    for rep in range(repeats):
        for arch in ARCHS if rep % 2 == 0 else ARCHS[::-1]:
            runs[arch].append(run_phase(phase, arch, resolution, **options_for(arch, rep)))
    row = {}
    for arch, rs in runs.items():
        row[arch] = {"images": rs[0]["images"], "ips_runs": [r["ips"] for r in rs],
                     "peak_mb_runs": [r["peak_mb"] for r in rs], "wall_runs": [r["wall"] for r in rs]}  # fmt: skip
        row[arch]["ips"] = statistics.median(row[arch]["ips_runs"])
        row[arch]["peak_mb"] = max(row[arch]["peak_mb_runs"])
    row["ratio"] = row["ganprint"]["ips"] / row["original"]["ips"]
    # Per-repeat ratios (neighbouring runs), for the JSON: their spread shows how far to trust `ratio`.
    row["ratio_runs"] = [g / o for g, o in zip(row["ganprint"]["ips_runs"], row["original"]["ips_runs"])]
    return row


def input_folders(resolution: int, opts, work: Path) -> dict[int, Path]:
    """{N: folder, 4N: folder} of PNGs at 2x `resolution` (made by `prepare_inputs`)."""
    n = images_for(resolution, opts)
    return {count: work / f"in-{resolution}-{count}" for count in (n, 4 * n)}


def prepare_inputs(opts, work: Path) -> None:
    """All input folders in one (unmeasured) child: importing torch once is the slow part."""
    make = [(folder, count, 2 * r) for r in opts.resolutions for count, folder in input_folders(r, opts, work).items()]
    run_child_process("prepare", make=make)


def bench_resolution(resolution: int, opts, work: Path) -> list[dict]:
    inputs = input_folders(resolution, opts, work)
    n = min(inputs)

    def out_dir(name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))

    embedded = {arch: out_dir(f"embed-{arch}-{resolution}") for arch in ARCHS}  # what detect reads
    folder_options = {"batch_size": opts.batch_size}
    train_options = {"train_seconds": opts.train_seconds, "train_steps": opts.train_steps}

    def embed_options(count: int):
        def options(arch: str, rep: int) -> dict:
            keep = count == n and rep == 0
            return {"input": inputs[count], "output": embedded[arch] if keep else out_dir("embed"), **folder_options}

        return options

    plan = [
        (f"train b{train_batch(resolution)}", "train", lambda arch, rep: train_options),
        (f"embed N={n}", "embed", embed_options(n)),
        (f"embed N={4 * n}", "embed", embed_options(4 * n)),
        (f"detect N={n}", "detect",
         lambda arch, rep: {"input": embedded[arch], "output": out_dir("detect"), **folder_options}),
    ]  # fmt: skip
    rows = []
    for label, phase, options_for in plan:
        rows.append({"resolution": resolution, "phase": label, **interleaved(phase, resolution, opts.repeats, options_for)})
        print_row(rows[-1])
    return rows


def machine_info() -> dict:
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "torch": importlib.metadata.version("torch"), "threads": THREADS}  # fmt: skip


def header(opts, machine: dict) -> str:
    return (
        f"machine: {machine['cpu_count']} CPUs ({machine['machine']}), torch {machine['torch']}, "
        f"{machine['threads']} threads; figures are medians of {opts.repeats} interleaved run(s) per arch; "
        f"ratio = ganprint/original img/s (the figure to quote); MB = peak RSS growth (largest run)"
    )


COLUMNS = f"{'res':>4}  {'phase':<14}{'ganprint img/s':>15}{'original img/s':>15}{'ratio':>8}" \
          f"{'ganprint MB':>13}{'original MB':>13}"  # fmt: skip


def print_row(row: dict) -> None:
    g, o = row["ganprint"], row["original"]
    print(f"{row['resolution']:>4}  {row['phase']:<14}{g['ips']:>15.1f}{o['ips']:>15.1f}{row['ratio']:>8.2f}"
          f"{g['peak_mb']:>13.0f}{o['peak_mb']:>13.0f}", flush=True)  # fmt: skip


def print_memory_check(rows: list[dict]) -> None:
    """Embed peak memory at N and 4N side by side: streaming means (nearly) no growth."""
    for resolution in sorted({r["resolution"] for r in rows}):
        small, large = [r for r in rows if r["resolution"] == resolution and r["phase"].startswith("embed")]
        parts = [f"{a} {small[a]['peak_mb']:.0f} -> {large[a]['peak_mb']:.0f} MB" for a in ARCHS]
        print(f"embed peak memory at {resolution} px, {small['phase'][6:]} -> {large['phase'][6:]}: {'; '.join(parts)}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, few images, one timed step")
    parser.add_argument("--repeats", type=int, help="interleaved runs per arch (default 3, --quick 1)")
    parser.add_argument("--images", type=int, help="N for embed/detect (default 4 batches at 32 px, else 1; --quick 1)")
    parser.add_argument("--batch-size", type=int, help="embed/detect folder batch (default 64 as the CLI, --quick 8)")
    parser.add_argument("--train-seconds", type=float, help="timed training per run, at least (default 8, --quick 0)")
    parser.add_argument("--train-steps", type=int, help="timed training steps per run, at least (default 3, --quick 1)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--json", metavar="OUT", help="also write the results here")
    # Hidden: the child side (--train-seconds, --train-steps and --batch-size reach it too).
    for name in ("--phase", "--arch", "--input", "--output"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=3, action="append", help=argparse.SUPPRESS)  # folder count size
    opts = parser.parse_args()
    quick = opts.quick
    opts.repeats = opts.repeats or (1 if quick else 3)
    opts.batch_size = opts.batch_size or (8 if quick else 64)
    opts.train_steps = opts.train_steps or (1 if quick else 3)
    opts.train_seconds = opts.train_seconds if opts.train_seconds is not None else (0.0 if quick else 8.0)
    return opts


def main() -> None:
    opts = parse_args()
    if opts.phase:
        return run_child(opts)

    machine = machine_info()
    print(header(opts, machine))
    print(f"embed/detect: N PNGs at 2x the resolution, folder batch {opts.batch_size}; train: timed for "
          f">= {opts.train_steps} steps and >= {opts.train_seconds:g} s per run after one warm-up step")  # fmt: skip
    print(COLUMNS)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganprint-bench-") as tmp:
        prepare_inputs(opts, Path(tmp))
        for resolution in opts.resolutions:
            rows += bench_resolution(resolution, opts, Path(tmp))
    print_memory_check(rows)
    print(f"total {time.perf_counter() - start:.0f} s")
    if opts.json:
        keys = ("quick", "repeats", "images", "batch_size", "train_seconds", "train_steps", "resolutions")
        settings = {k: getattr(opts, k) for k in keys}
        settings["images"] = {r: images_for(r, opts) for r in opts.resolutions}
        Path(opts.json).write_text(json.dumps({"machine": machine, "settings": settings, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
