"""Robustness of an immunized codec against an original-style one at 32x32, on held-out images.

Both codecs are measured in the same run, on the same images and fingerprints, under the attacks of
issue 6's targets: JPEG quality 75, Gaussian noise std 0.05, Gaussian blur sigma 1, center crop 90%
resized back, brightness -30% and +30%; plus PSNR on clean images. Targets: bit accuracy >= 0.95
under each attack, PSNR >= 32 dB. With --refine-steps N (default 40) a third column measures the
immunized codec embedding with informed embedding (codec/refine.py), and the targets are judged on it.

Held-out images (none was used to train the shipped codecs):
  samples       the 64 built-in crops of five held-out photos
  photo-crops   random crops of the same held-out photos (needs scikit-image and scikit-learn)
With --heldout DIR, instead (the set of benchmarks/heldout_photos.py, other sources; docs/heldout.md),
each measured and printed as its own table:
  heldout-crops  --count crops of every distinct image of the set (photographs, artwork, textures,
                 gradients), crop sides log-uniform from the codec's resolution to the whole image
  heldout-whole  every image of the set whole, resized and centre-cropped as ganprint does

Works with any two codecs (shipped names, model folders or original .pth files).

Usage: python benchmarks/bench_robustness.py [--immunized codec-32-robust] [--original codec-32]
           [--refine-steps 40] [--count 1000] [--heldout DIR] [--report DIR] [--json OUT] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ganprint.attacks import parse_attack_levels
from ganprint.codec.importing import load_codec
from ganprint.data import pil_to_tensor, preprocess
from ganprint.errors import GanprintError
from ganprint.evaluation import CodecSubject, run_grid, write_report
from ganprint.decoders import describe_codec
from ganprint.evaluation.subjects import calibrated_null, load_images

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


def heldout_sets(folder: str, resolution: int, count: int, seed: int) -> dict[str, torch.Tensor]:
    """The held-out set of benchmarks/heldout_photos.py: `count` crops, and every image whole."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from heldout_photos import heldout_crops, iter_heldout_images

    crops = [pil_to_tensor(im) for _, im in heldout_crops(count, resolution, folder, seed)]
    whole = [pil_to_tensor(preprocess(im, resolution)) for _, im in iter_heldout_images(folder)]
    return {f"heldout-crops ({len(crops)})": torch.stack(crops), f"heldout-whole ({len(whole)})": torch.stack(whole)}


def measure(codecs: dict, specs: dict, images: torch.Tensor, source: str, args) -> tuple[dict, bool]:
    """One robustness table (printed) of the codecs on `images`; whether the judged codec meets every target."""
    subjects = [CodecSubject(c, images, name, seed=args.seed, source=source) for name, c in codecs.items()]
    if args.refine_steps:
        subjects.append(CodecSubject(codecs["immunized"], images, "refined", seed=args.seed, source=source,
                                     refine_steps=args.refine_steps))  # fmt: skip
    for subject in subjects:  # detection at the codec's calibrated threshold when it has calibration.json
        subject.null = calibrated_null(describe_codec(specs[subject.name], subject.codec))
    columns = [s.name for s in subjects]
    judged = columns[-1]  # the immunized codec, refined when asked
    started = time.time()
    result = run_grid(subjects, parse_attack_levels(ATTACKS), args.fpr, args.seed, progress=True)
    minutes = (time.time() - started) / 60
    if args.report:
        report = Path(args.report) / source.split(" ")[0] if args.heldout else args.report
        write_report(result, report, overwrite=True, title="ganprint robustness: immunized vs original codec")

    refined = f"; refined: the immunized codec with {args.refine_steps} refine steps per image" if args.refine_steps else ""
    print(f"original: {args.original}; immunized: {args.immunized}{refined}")
    print(f"{len(images)} held-out images: {source}; {minutes:.1f} min")
    print(f"bit accuracy (detected share at FPR {args.fpr:g}); target >= {TARGET_ACCURACY} per attack, "
          f"PSNR >= {TARGET_PSNR} dB, judged on {judged}")  # fmt: skip
    print(f"{'attack':<16}" + "".join(f"{c:>18}" for c in columns) + f"{'target':>9}")
    table, passed = {}, True
    for label in ["none", *(lv.label for lv in parse_attack_levels(ATTACKS))]:
        rows = {c: result.row(c, label) for c in columns}
        ok = rows[judged]["bit_accuracy"] >= TARGET_ACCURACY
        passed &= ok
        table[label] = {**{c: r["bit_accuracy"] for c, r in rows.items()},
                        **{f"{c}_detected": r["detection_rate"] for c, r in rows.items()}}  # fmt: skip
        cells = "".join(f"{r['bit_accuracy']:>11.4f} ({r['detection_rate']:.2f})" for r in rows.values())
        print(f"{label:<16}{cells}{'pass' if ok else 'FAIL':>9}")
    rows = {c: result.row(c, "none") for c in columns}
    ok = rows[judged]["psnr_clean"] >= TARGET_PSNR
    passed &= ok
    table["psnr_clean"] = {c: r["psnr_clean"] for c, r in rows.items()}
    print(f"{'PSNR clean (dB)':<16}" + "".join(f"{r['psnr_clean']:>18.2f}" for r in rows.values()) +
          f"{'pass' if ok else 'FAIL':>9}")  # fmt: skip
    print(f"{'SSIM clean':<16}" + "".join(f"{r['ssim_clean']:>18.4f}" for r in rows.values()))
    print(f"{'clean FP rate':<16}" + "".join(f"{r['clean_detection_rate']:>18.4f}" for r in rows.values()))
    per_image = {c: result.meta["sample_seconds"][c] / len(images) for c in columns}
    print(f"{'embed s/image':<16}" + "".join(f"{v:>18.4f}" for v in per_image.values()) +
          f"   ({torch.get_num_threads()} threads)")  # fmt: skip
    print(f"{judged} meets every target" if passed else f"{judged} misses a target")
    table["minutes"], table["embed_seconds_per_image"], table["judged"] = minutes, per_image, judged
    return table, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--immunized", default="codec-32-robust", help="codec trained with --augment")
    parser.add_argument("--original", default="codec-32", help="codec trained without perturbations")
    parser.add_argument("--refine-steps", type=int, default=40,
                        help="also measure the immunized codec with informed embedding, this many Adam steps per "
                             "image (codec/refine.py); the targets are judged on it. 0: without refinement only")
    parser.add_argument("--count", type=int, default=1000,
                        help="held-out photo crops besides the 64 samples (with --heldout: crops of the set)")
    parser.add_argument("--heldout", default=None, metavar="DIR",
                        help="measure on the held-out set built by benchmarks/heldout_photos.py in DIR instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fpr", type=float, default=1e-6)
    parser.add_argument("--report", default=None, help="also write the full report (CSV, JSON, plots, HTML) here")
    parser.add_argument("--json", default=None, help="also write the table as JSON to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 if the judged codec misses a target")
    args = parser.parse_args()
    torch.set_num_threads(2)

    try:
        codecs = {"original": load_codec(args.original), "immunized": load_codec(args.immunized)}
    except GanprintError as exc:
        raise SystemExit(f"error: {exc}")
    resolutions = {c.config.resolution for c in codecs.values()}
    if len(resolutions) != 1:
        raise SystemExit(f"error: the codecs work at different resolutions {sorted(resolutions)}")
    resolution = resolutions.pop()
    if args.heldout:
        try:
            image_sets = heldout_sets(args.heldout, resolution, args.count, args.seed)
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f"error: {exc}")
    else:
        images, sets = held_out_images(resolution, args.count, args.seed)
        image_sets = {" + ".join(sets): images}
    specs = {"original": args.original, "immunized": args.immunized, "refined": args.immunized}
    tables, passed = {}, True
    for source, images in image_sets.items():
        table, ok = measure(codecs, specs, images, source, args)
        tables[source] = table
        passed &= ok
    if args.json:
        Path(args.json).write_text(json.dumps({"sets": list(image_sets), "refine_steps": args.refine_steps,
                                               "tables": tables, "passed": passed}, indent=2))  # fmt: skip
    if args.check and not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
