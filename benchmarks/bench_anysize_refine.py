"""Informed embedding for codec-any (codec/anysize_refine.py) against plain embedding, on held-out images
at native size: PSNR, bit accuracy after a PNG round trip, JPEG 75, a centred crop keeping 50% of the
area and a resize to 0.5, and the embed time of both, run alternately on each image (ratio of totals).
Then the same images in greyscale (mode L): plain (the colour residual averaged to grey) against the
default refinement (a grey residual). Images: benchmarks/bench_codec_any.py's size classes.

    python benchmarks/bench_anysize_refine.py --heldout /tmp/heldout            # 8 + 4 + 2 images
    python benchmarks/bench_anysize_refine.py --heldout /tmp/heldout --steps 20 --count 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZES = {"256px": ((256, 256), 2), "1MP": ((1152, 864), 1), "1080p": ((1920, 1080), 0.5)}  # size, share of --count
ATTACKS = "jpeg:75,crop_area:0.5,rescale:0.5"


def _accuracy(codec, image, bits) -> float:
    return ((codec.decode_logits([image])[0] > 0).float() == bits).float().mean().item()


def _psnr_pil(marked: Image.Image, clean: Image.Image) -> float:
    d = np.asarray(marked, dtype=np.float64) - np.asarray(clean, dtype=np.float64)
    return float(10 * np.log10(255.0**2 / max((d * d).mean(), 1e-12)))


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    parser.add_argument("--model", default="codec-any")
    parser.add_argument("--heldout", default=None, help="a built held-out set (default: made in memory)")
    parser.add_argument("--count", type=int, default=4, help="1MP images; twice as many 256px, half as many 1080p")
    parser.add_argument("--steps", type=int, default=10, help="refinement steps for colour (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from bench_codec_any import _png_round_trip, _sources, _to_tensor, class_images

    from ganprint.attacks import parse_attack_levels
    from ganprint.codec.importing import load_codec
    from ganprint.evaluation.quality import psnr
    from ganprint.evaluation.subjects import to_8bit

    codec = load_codec(args.model)
    args.data = None
    sources = _sources(args)
    images = [im for size, share in SIZES.values() for im in class_images(sources, size, max(1, round(args.count * share)))]
    levels = parse_attack_levels(ATTACKS)
    g = torch.Generator().manual_seed(args.seed)
    names = ["png", *[lv.label for lv in levels]]
    rows = {v: {k: [] for k in ["psnr", "seconds", *names]} for v in ("plain", "refined")}
    grey = {v: {"psnr": [], "png": [], "seconds": []} for v in ("plain", "refined")}
    for k, (name, image) in enumerate(images):
        clean = _to_tensor(image)
        bits = torch.randint(0, 2, (codec.config.fingerprint_length,), generator=g).float()
        for variant, steps in (("plain", 0), ("refined", args.steps)):
            marked, seconds = _timed(lambda: to_8bit(codec.embed(clean, bits, refine=steps)))
            row = rows[variant]
            row["seconds"].append(seconds)
            row["psnr"].append(psnr([marked], [clean]).item())
            row["png"].append(_accuracy(codec, _png_round_trip(marked), bits))
            for level in levels:
                row[level.label].append(_accuracy(codec, to_8bit(level.apply(marked, seed=args.seed + k)), bits))
        grey_clean = image.convert("L")
        for variant, steps in (("plain", 0), ("refined", None)):
            marked, seconds = _timed(lambda: codec.embed(grey_clean, bits, refine=steps))
            grey[variant]["seconds"].append(seconds)
            grey[variant]["psnr"].append(_psnr_pil(marked, grey_clean))
            grey[variant]["png"].append(_accuracy(codec, marked, bits))
        print(f"  {name} {image.width}x{image.height}: " + "; ".join(
            f"{v} png {rows[v]['png'][-1]:.3f} psnr {rows[v]['psnr'][-1]:.2f} {rows[v]['seconds'][-1]:.2f}s"
            for v in rows) + f"; grey {grey['plain']['png'][-1]:.2f} -> {grey['refined']['png'][-1]:.2f}",
            file=sys.stderr, flush=True)  # fmt: skip

    print(f"{args.model}, {len(images)} held-out images ({', '.join(f'{im.width}x{im.height}' for _, im in images)}), "
          f"colour refined with {args.steps} steps, grey with the default")  # fmt: skip
    print(f"{'':10}{'PSNR dB':>9}{'worst':>7}" + "".join(f"{n:>15}" for n in names) + f"{'embed s':>9}")
    for variant, row in rows.items():
        print(f"{variant:10}{statistics.mean(row['psnr']):9.2f}{min(row['psnr']):7.2f}"
              + "".join(f"{statistics.mean(row[n]):15.4f}" for n in names) + f"{sum(row['seconds']):9.1f}")  # fmt: skip
    print(f"  images read perfectly after PNG: plain {sum(a == 1 for a in rows['plain']['png'])}, "
          f"refined {sum(a == 1 for a in rows['refined']['png'])} of {len(images)}")
    print(f"  embed time refined / plain: {sum(rows['refined']['seconds']) / sum(rows['plain']['seconds']):.1f}x")
    for variant, row in grey.items():
        print(f"grey {variant:8} PSNR {statistics.mean(row['psnr']):.2f} dB (worst {min(row['psnr']):.2f}), "
              f"bit accuracy {statistics.mean(row['png']):.4f} (min {min(row['png']):.2f}), "
              f"{sum(row['seconds']):.1f} s")
    print(f"  grey embed time refined / plain: {sum(grey['refined']['seconds']) / sum(grey['plain']['seconds']):.1f}x")


if __name__ == "__main__":
    main()
