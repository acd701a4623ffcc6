"""Attribution: matching speed at scale, and the open-world attribution experiment.

Part 1, speed (--speed): registries of 10^4, 10^5 and 10^6 random 128-bit fingerprints; a batch of
query bit strings (half of them a registered fingerprint with a few bits flipped, half random) goes
through the full verdict path of ganprint.attribution.Attributor (exact Hamming search + statistics
+ verdicts; decoding excluded). Prints images/s, index build time and memory.

Part 2, experiment (--experiment), the issue's target: 100 registered models, 1,000 fingerprinted
images (10 per model), 10,000 clean images (Fashion-MNIST test images and crops of held-out photos
that no shipped model was trained on), at the default false-positive rate 1e-6:
zero false attributions, >= 99.9% correct attributions.
- Codec models: each model's fingerprint is embedded into 10 cover images by the codec (the images
  a GAN trained on that model's fingerprinted data would reproduce), saved as PNG and read back.
- Scalable models (--scalable-network PATH, when the scalable generator exists): half of the 100
  models are fingerprints of that network, their images generated through the hook
  ganprint.scalable.fingerprinted_images (see ganprint/decoders.py), read by its decoder, and matched
  against the scalable fingerprints only; clean images are read by both decoders.
- 10 more fingerprinted models are NOT registered: their images must never be attributed (ideally
  "fingerprinted-unknown").
- Each decoder is first calibrated on 2,000 other clean images (ganprint.calibration), as a user
  would; results are given with the calibration and with fair-coin p-values only.

Usage:
  python benchmarks/bench_attribution.py --speed [--sizes 10000,100000,1000000] [--queries 4000]
  python benchmarks/bench_attribution.py --experiment [--model codec-32] [--scalable-network PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ganprint.attribution import ATTRIBUTED, NOT_FINGERPRINTED, UNKNOWN, Attributor  # noqa: E402
from ganprint.detection import DEFAULT_FALSE_POSITIVE_RATE  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------ speed
def speed(sizes: list[int], length: int, queries: int, backend: str, threads: int | None, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    print(f"matching speed: {length}-bit fingerprints, {queries} queries (half fingerprinted with 3 flipped bits)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'registered':>11}{'backend':>9}{'threads':>8}{'build s':>9}{'images/s':>11}{'img/cpu-s':>11}{'radius':>8}"
          f"{'index MB':>10}{'RSS +MB':>9}{'correct':>9}")  # fmt: skip
    for n in sizes:
        before = rss_mb()
        registered = rng.integers(0, 2, (n, length), dtype=np.uint8)
        start = time.perf_counter()
        att = Attributor([f"m{i}" for i in range(n)], registered, backend=backend, threads=threads)
        build = time.perf_counter() - start
        which = rng.integers(0, n, queries // 2)
        q = rng.integers(0, 2, (queries, length), dtype=np.uint8)
        q[: queries // 2] = registered[which]
        flips = rng.integers(0, length, (queries // 2, 3))
        for i, f in enumerate(flips):
            q[i, f] ^= 1
        att.attribute_bits(q[:64])  # warm up
        start, cpu = time.perf_counter(), time.process_time()
        results = att.attribute_bits(q)
        rate = queries / (time.perf_counter() - start)
        per_cpu_second = queries / (time.process_time() - cpu)  # independent of other load on the machine
        correct = sum(r.model == f"m{w}" for r, w in zip(results, which)) + sum(
            r.verdict == NOT_FINGERPRINTED for r in results[queries // 2 :]
        )
        row = {"registered": n, "backend": att.index.backend, "threads": att.index.threads, "build_s": build,
               "images_per_s": rate, "images_per_cpu_s": per_cpu_second, "decision_radius": att.decision_radius,
               "index_mb": att.index.memory_bytes / 2**20, "rss_delta_mb": rss_mb() - before,
               "correct": correct / queries}  # fmt: skip
        rows.append(row)
        print(f"{n:>11}{row['backend']:>9}{row['threads']:>8}{build:>9.2f}{rate:>11.0f}{per_cpu_second:>11.0f}"
              f"{att.decision_radius:>8}"
              f"{row['index_mb']:>10.1f}{row['rss_delta_mb']:>9.0f}{row['correct']:>9.4f}")  # fmt: skip
        del att, registered
    return rows


# ------------------------------------------------------------------------------------ experiment
def clean_pools(seed: int, n_calibration: int = 2000, n_test: int = 10000) -> tuple[list, list]:
    """(calibration images, test images): disjoint clean PIL images, half Fashion-MNIST test images and
    half held-out photo crops for calibration; 90% Fashion-MNIST and 10% crops for testing."""
    from bench_codec_quality import held_out_photo_crops

    from ganprint.data import open_source

    fashion = open_source("fashion-mnist:test")
    fashion_cal, crops_cal = n_calibration // 2, n_calibration - n_calibration // 2
    fashion_test = min(len(fashion) - fashion_cal, n_test - n_test // 10)
    crops = held_out_photo_crops(crops_cal + n_test - fashion_test, seed)
    fashion_images = [fashion.image(i) for i in range(fashion_cal + fashion_test)]
    calibration = fashion_images[:fashion_cal] + crops[:crops_cal]
    test = fashion_images[fashion_cal:] + crops[crops_cal:]
    return calibration, test


def cover_images(count: int, seed: int) -> list:
    """Images to fingerprint (codec): Fashion-MNIST training images and other photo crops."""
    from bench_codec_quality import held_out_photo_crops

    from ganprint.data import open_source

    fashion = open_source("fashion-mnist:train")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(fashion), count // 2, replace=False)
    return [fashion.image(int(i)) for i in picks] + held_out_photo_crops(count - count // 2, seed + 100)


def to_batch(images: list, resolution: int) -> torch.Tensor:
    from ganprint.data import pil_to_tensor, preprocess

    return torch.stack([pil_to_tensor(preprocess(im.convert("RGB"), resolution)) for im in images])


def png_round_trip(images: torch.Tensor, workdir: str) -> torch.Tensor:
    from ganprint.data import load_image, pil_to_tensor, tensor_to_pil

    out = []
    for i, image in enumerate(images):
        path = os.path.join(workdir, f"{i:06d}.png")
        tensor_to_pil(image).save(path)
        out.append(pil_to_tensor(load_image(path)))
    return torch.stack(out)


def decode(decoder, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([decoder.decode_logits(images[i : i + batch]) for i in range(0, len(images), batch)])


def experiment(args) -> dict:
    from ganprint.calibration import calibrate_logits
    from ganprint.decoders import load_decoder
    from ganprint.registry import Registry

    torch.manual_seed(args.seed)
    codec_decoder = load_decoder(args.model, "codec", "cpu")
    decoders = {"codec": codec_decoder}
    n_models = {"codec": args.models}
    if args.scalable_network:
        from ganprint.decoders import fingerprinted_images  # the scalable hook (see ganprint/decoders.py)

        decoders["scalable"] = load_decoder(args.scalable_network, "scalable", "cpu")
        n_models = {"codec": args.models // 2, "scalable": args.models - args.models // 2}
    print(f"experiment: {args.models} registered models ({', '.join(f'{v} {k}' for k, v in n_models.items())}), "
          f"{args.per_model} images each, {args.unregistered} unregistered models, FPR {args.fpr:g}")  # fmt: skip

    t0 = time.perf_counter()
    calibration_images, clean_images = clean_pools(args.seed, args.calibration_images, args.clean_images)
    print(f"clean images: {len(calibration_images)} for calibration, {len(clean_images)} for testing "
          f"({time.perf_counter() - t0:.0f} s to load)")  # fmt: skip

    report: dict = {"models": n_models, "fpr": args.fpr}
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(os.path.join(tmp, "registry.db"), create=True)
        for method, decoder in decoders.items():
            L = decoder.fingerprint_length
            registered = registry.issue([f"{method}-model-{i:03d}" for i in range(n_models[method])], L, method=method,
                                        seed=args.seed)  # fmt: skip
            unregistered = torch.randint(0, 2, (args.unregistered, L), generator=torch.Generator().manual_seed(7)).float()

            # fingerprinted images: per model, `per_model` images carrying its fingerprint, through PNG files
            t0 = time.perf_counter()
            fingerprints = [torch.from_numpy(e.bits).float() for e in registered] + list(unregistered)
            truth = [e.model for e in registered] + [None] * args.unregistered
            if method == "codec":
                from ganprint.codec.importing import load_codec

                codec = load_codec(args.model, device="cpu")
                covers = to_batch(cover_images(len(fingerprints) * args.per_model, args.seed), decoder.resolution)
                bits = torch.stack(fingerprints).repeat_interleave(args.per_model, dim=0)
                marked = torch.cat([codec.embed(covers[i : i + 256], bits[i : i + 256]).cpu()
                                    for i in range(0, len(covers), 256)])  # fmt: skip
            else:
                marked = torch.cat([fingerprinted_images(args.scalable_network, f, args.per_model, args.seed + i, "cpu")
                                    for i, f in enumerate(fingerprints)])  # fmt: skip
            marked_dir = os.path.join(tmp, f"{method}-marked")
            os.makedirs(marked_dir)
            marked = png_round_trip(marked, marked_dir)
            labels = [m for m in truth for _ in range(args.per_model)]
            marked_logits = decode(decoder, marked)
            clean_logits = decode(decoder, to_batch(clean_images, decoder.resolution))
            calib_logits = decode(decoder, to_batch(calibration_images, decoder.resolution))
            print(f"[{method}] decoded {len(marked)} fingerprinted and {len(clean_logits) + len(calib_logits)} clean "
                  f"images in {time.perf_counter() - t0:.0f} s")  # fmt: skip

            cal = calibrate_logits(calib_logits, args.fpr, method=method, decoder=decoder.name,
                                   resolution=decoder.resolution, source="benchmark calibration set")  # fmt: skip
            for w in cal.warnings:
                print(f"[{method}] calibration warning: {w}")
            print(f"[{method}] calibration: thresholds {cal.binomial_threshold}/{L} (fair) {cal.calibrated_threshold}/{L}"
                  f" (calibrated), optimism {cal.optimism:.2g}x, clean confidence max "
                  f"{cal.confidence_quantiles['1.0']:.3f} (unknown-verdict FPR <= {cal.unknown_false_positive_rate:.2g})")

            for variant, kwargs in (("calibrated", {"null": cal.null_model(), "confidence_threshold": cal.confidence_threshold}),
                                    ("fair-coin", {})):  # fmt: skip
                att = Attributor.from_registry(registry, method, L, false_positive_rate=args.fpr, **kwargs)
                on_marked = att.attribute_logits(marked_logits)
                on_clean = att.attribute_logits(clean_logits)
                reg_results = [(r, want) for r, want in zip(on_marked, labels) if want is not None]
                unreg_results = [r for r, want in zip(on_marked, labels) if want is None]
                res = {
                    "fingerprinted": len(reg_results),
                    "correct": sum(r.model == want for r, want in reg_results),
                    "wrong_model": sum(r.verdict == ATTRIBUTED and r.model != want for r, want in reg_results),
                    "missed_unknown": sum(r.verdict == UNKNOWN for r, _ in reg_results),
                    "missed_not": sum(r.verdict == NOT_FINGERPRINTED for r, _ in reg_results),
                    "clean": len(on_clean),
                    "clean_attributed": sum(r.verdict == ATTRIBUTED for r in on_clean),
                    "clean_unknown": sum(r.verdict == UNKNOWN for r in on_clean),
                    "unregistered": len(unreg_results),
                    "unregistered_attributed": sum(r.verdict == ATTRIBUTED for r in unreg_results),
                    "unregistered_unknown": sum(r.verdict == UNKNOWN for r in unreg_results),
                    "decision_radius": att.decision_radius,
                    "mean_bit_accuracy": float(np.mean([r.bit_accuracy or 0 for r, _ in reg_results])),
                }
                res["false_attributions"] = res["wrong_model"] + res["clean_attributed"] + res["unregistered_attributed"]
                report[f"{method}/{variant}"] = res
    registry.close()

    print(f"\n{'run':<20}{'correct':>14}{'false attr.':>12}{'clean unknown':>14}{'unreg. unknown':>15}{'radius':>7}")
    ok = True
    for name, res in report.items():
        if not isinstance(res, dict) or "correct" not in res:
            continue
        print(f"{name:<20}{res['correct']:>6}/{res['fingerprinted']:<5} ({res['correct'] / res['fingerprinted']:.4f})"
              f"{res['false_attributions']:>5}{res['clean_unknown']:>10}/{res['clean']:<5}"
              f"{res['unregistered_unknown']:>8}/{res['unregistered']:<6}{res['decision_radius']:>5}")  # fmt: skip
        if name.endswith("calibrated"):
            ok &= res["false_attributions"] == 0 and res["correct"] >= 0.999 * res["fingerprinted"]
    total = {k: sum(r[k] for n, r in report.items() if n.endswith("/calibrated")) for k in ("correct", "fingerprinted",
                                                                                          "false_attributions")}  # fmt: skip
    print(f"\ntarget (calibrated, all methods): {total['correct']}/{total['fingerprinted']} correct "
          f"({total['correct'] / total['fingerprinted']:.4f} >= 0.999), {total['false_attributions']} false "
          f"attributions (== 0): {'MET' if ok else 'NOT MET'}")  # fmt: skip
    report["target_met"] = ok
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", action="store_true", help="run the matching-speed part")
    parser.add_argument("--experiment", action="store_true", help="run the attribution experiment")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="registry sizes for --speed")
    parser.add_argument("--length", type=int, default=128, help="fingerprint bits for --speed")
    parser.add_argument("--queries", type=int, default=4000, help="query images for --speed")
    parser.add_argument("--backend", default="auto", choices=["auto", "faiss", "numpy"])
    parser.add_argument("--threads", type=int, default=None, help="matching threads (default: all cores)")
    parser.add_argument("--model", default="codec-32", help="codec name or folder")
    parser.add_argument("--scalable-network", default=None, metavar="PATH",
                        help="a scalable-fingerprinting network: half the models become its fingerprints")
    parser.add_argument("--models", type=int, default=100, help="registered models")
    parser.add_argument("--per-model", type=int, default=10, help="fingerprinted images per model")
    parser.add_argument("--unregistered", type=int, default=10, help="fingerprinted but unregistered models")
    parser.add_argument("--clean-images", type=int, default=10000, help="clean test images")
    parser.add_argument("--calibration-images", type=int, default=2000, help="clean calibration images")
    parser.add_argument("--fpr", type=float, default=DEFAULT_FALSE_POSITIVE_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if not (args.speed or args.experiment):
        parser.error("choose --speed and/or --experiment")
    torch.set_num_threads(2)
    results = {}
    if args.speed:
        results["speed"] = speed([int(s) for s in args.sizes.split(",")], args.length, args.queries, args.backend,
                                 args.threads, args.seed)  # fmt: skip
    if args.experiment:
        results["experiment"] = experiment(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
