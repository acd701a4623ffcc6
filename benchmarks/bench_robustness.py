"""Robustness of an immunized codec against an original-style one at 32x32, on held-out images.

Both codecs are measured in the same run, on the same images and fingerprints, under the attacks of
issue 6's targets: JPEG quality 75, Gaussian noise std 0.05, Gaussian blur sigma 1, center crop 90%
resized back, brightness -30% and +30%; plus PSNR on clean images. Targets: bit accuracy >= 0.95
under each attack, PSNR >= 32 dB.

Held-out images (none was used to train the shipped codecs):
  samples       the 64 built-in crops of five held-out photos
  photo-crops   random crops of the same held-out photos (needs scikit-image and scikit-learn)

Works with any two codecs (shipped names, model folders or original .pth files).

Usage: python benchmarks/bench_robustness.py [--immunized codec-32-immunized] [--original codec-32]
           [--count 1000] [--report DIR] [--json OUT] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ganprint.attacks import parse_attack_levels
from ganprint.codec.importing import load_codec
from ganprint.data import pil_to_tensor, preprocess
from ganprint.errors import GanprintError
from ganprint.evaluation import CodecSubject, run_grid, write_report
from ganprint.evaluation.subjects import load_images

ATTACKS = "jpeg:75,noise:0.05,blur:1,crop:0.9,brightness:0.7,brightness:1.3"
TARGET_ACCURACY, TARGET_PSNR = 0.95, 32.0


def held_out_images(resolution: int, count: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """The built-in samples plus `count` crops of the held-out photos, preprocessed to `resolution`."""
    images = [load_images("samples", resolution, 64)[1]]
    sets = ["samples (64)"]
    if count > 0:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        try:
            from bench_codec_quality import held_out_photo_crops

            crops = held_out_photo_crops(count, seed)
            images.append(torch.stack([pil_to_tensor(preprocess(im, resolution)) for im in crops]))
            sets.append(f"photo-crops ({count})")
        except ImportError as exc:
            print(f"photo-crops skipped: {exc}")
    return torch.cat(images), sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--immunized", default="codec-32-immunized", help="codec trained with --augment")
    parser.add_argument("--original", default="codec-32", help="codec trained without perturbations")
    parser.add_argument("--count", type=int, default=1000, help="held-out photo crops besides the 64 samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fpr", type=float, default=1e-6)
    parser.add_argument("--report", default=None, help="also write the full report (CSV, JSON, plots, HTML) here")
    parser.add_argument("--json", default=None, help="also write the table as JSON to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 if the immunized codec misses a target")
    args = parser.parse_args()
    torch.set_num_threads(2)

    try:
        codecs = {"original": load_codec(args.original), "immunized": load_codec(args.immunized)}
    except GanprintError as exc:
        raise SystemExit(f"error: {exc}")
    resolutions = {c.config.resolution for c in codecs.values()}
    if len(resolutions) != 1:
        raise SystemExit(f"error: the codecs work at different resolutions {sorted(resolutions)}")
    images, sets = held_out_images(resolutions.pop(), args.count, args.seed)
    subjects = [CodecSubject(c, images, name, seed=args.seed, source=" + ".join(sets)) for name, c in codecs.items()]
    result = run_grid(subjects, parse_attack_levels(ATTACKS), args.fpr, args.seed, progress=True)
    if args.report:
        write_report(result, args.report, overwrite=True, title="ganprint robustness: immunized vs original codec")

    print(f"original: {args.original}; immunized: {args.immunized}; {len(images)} held-out images: {', '.join(sets)}")
    print(f"bit accuracy (detected share at FPR {args.fpr:g}); target >= {TARGET_ACCURACY} per attack, "
          f"PSNR >= {TARGET_PSNR} dB")  # fmt: skip
    print(f"{'attack':<16}{'original':>18}{'immunized':>18}{'target':>9}")
    table, passed = {}, True
    for label in ["none", *(lv.label for lv in parse_attack_levels(ATTACKS))]:
        o, i = result.row("original", label), result.row("immunized", label)
        ok = i["bit_accuracy"] >= TARGET_ACCURACY
        passed &= ok
        table[label] = {"original": o["bit_accuracy"], "immunized": i["bit_accuracy"],
                        "original_detected": o["detection_rate"], "immunized_detected": i["detection_rate"]}  # fmt: skip
        print(f"{label:<16}{o['bit_accuracy']:>11.4f} ({o['detection_rate']:.2f}){i['bit_accuracy']:>11.4f} "
              f"({i['detection_rate']:.2f}){'pass' if ok else 'FAIL':>9}")  # fmt: skip
    o, i = result.row("original", "none"), result.row("immunized", "none")
    ok = i["psnr_clean"] >= TARGET_PSNR
    passed &= ok
    table["psnr_clean"] = {"original": o["psnr_clean"], "immunized": i["psnr_clean"]}
    print(f"{'PSNR clean (dB)':<16}{o['psnr_clean']:>18.2f}{i['psnr_clean']:>18.2f}{'pass' if ok else 'FAIL':>9}")
    print(f"{'SSIM clean':<16}{o['ssim_clean']:>18.4f}{i['ssim_clean']:>18.4f}")
    print(f"{'clean FP rate':<16}{o['clean_detection_rate']:>18.4f}{i['clean_detection_rate']:>18.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"sets": sets, "table": table, "passed": passed}, indent=2))
    print("immunized codec meets every target" if passed else "immunized codec misses a target")
    if args.check and not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
