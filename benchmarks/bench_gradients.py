"""Is the any-size codec's fingerprint visible in smooth gradients? Figures and 100% crops.

Issue 20 asks for no visible pattern in smooth gradients. This embeds one fingerprint into the held-out
set's smooth 8-bit gradients (benchmarks/heldout_photos.py: sky, radial, dusk 4K, dark, portrait; made,
not trained on) and into a few held-out photographs, at native size, saves them as 8-bit files would
hold them, and prints per image:

- PSNR of the whole image;
- in its flattest 160 px window and in its most textured one (what `ganprint demo` shows): the change
  in 8-bit levels (RMS, largest, share of pixels changed) and its RMS as a Weber contrast, the change
  over the window's mean luminance (a pattern's visibility grows with that ratio, not with the levels);
- the bit accuracy read back from the 8-bit image, so a quieter gradient is not bought with the bits.

and writes a picture of 100% crops (clean / fingerprinted / amplified residual; the residual
stretched to full range, so it always looks strong there): the flattest window of each gradient, then
the flattest and busiest windows of the first photo.

    python benchmarks/bench_gradients.py --picture docs/images/codec-any-gradients.png
    python benchmarks/bench_gradients.py --heldout heldout/ --model runs/.../snapshot-001500
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIDE = 160  # px of the 100% windows (as the demo's)


def window_stats(clean: torch.Tensor, marked: torch.Tensor, y: int, x: int) -> dict[str, float]:
    """The change inside one SIDE x SIDE window, in 8-bit levels and as Weber contrast."""
    c = clean[:, y : y + SIDE, x : x + SIDE] * 255
    d = marked[:, y : y + SIDE, x : x + SIDE] * 255 - c
    luminance = c.mean().item()
    rms = d.pow(2).mean().sqrt().item()
    return {"rms_levels": rms, "max_levels": d.abs().max().item(), "changed": (d.abs() > 0.5).float().mean().item(),
            "weber_percent": 100 * rms / max(luminance, 1.0), "mean_level": luminance}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", default="codec-any", help="shipped name or model folder (default codec-any)")
    parser.add_argument("--heldout", default=None, help="a built held-out set (default: made in memory)")
    parser.add_argument("--photos", type=int, default=3, help="held-out photographs beside the gradients")
    parser.add_argument("--picture", default=None, help="write the 100%% crops here (PNG)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from heldout_photos import heldout_images

    from ganprint.codec.importing import load_codec
    from ganprint.data import pil_to_tensor
    from ganprint.evaluation.subjects import to_8bit
    from ganprint.visualize import flattest_and_busiest_windows, residual_grid, save_png

    codec = load_codec(args.model, device="cpu")
    bits = torch.randint(0, 2, (codec.config.fingerprint_length,), generator=torch.Generator().manual_seed(args.seed))
    bits = bits.float()
    try:
        gradients = heldout_images(args.heldout, categories=("gradient",), max_side=4096)
        photos = heldout_images(args.heldout, categories=("photo",), kinds=("native",), min_side=512, max_side=4096)
    except Exception as exc:  # the held-out packages missing: say how to get them
        raise SystemExit(f"error: {exc}") from None
    step = max(1, len(photos) // max(1, args.photos))
    images = [(n, im, "gradient") for n, im in gradients]
    images += [(n, im, "photo") for n, im in photos[::step][: args.photos]]

    print(f"{codec.config.fingerprint_length} bits, {args.model}; windows of {SIDE} px; levels of 255; "
          "Weber = RMS change / window's mean level")
    print(f"{'image':<28}{'size':>11}{'PSNR':>7}{'bits':>7} | {'flattest window: RMS  max  changed  Weber':>44}"
          f" | {'busiest window: RMS  max  Weber':>32}")
    crops_clean, crops_marked = [], []
    for name, image, category in images:
        clean = pil_to_tensor(image)
        marked = to_8bit(codec.embed(clean, bits).cpu())
        psnr = 10 * math.log10(1 / max(1e-12, (marked - clean).pow(2).mean().item()))
        accuracy = ((codec.decode_logits([marked])[0] > 0).float() == bits).float().mean().item()
        (fy, fx), (by, bx) = flattest_and_busiest_windows(clean, SIDE)
        flat, busy = window_stats(clean, marked, fy, fx), window_stats(clean, marked, by, bx)
        print(f"{name[:27]:<28}{f'{clean.shape[2]}x{clean.shape[1]}':>11}{psnr:>7.1f}{accuracy:>7.3f} | "
              f"{flat['rms_levels']:>20.2f}{flat['max_levels']:>5.0f}{flat['changed']:>9.1%}"
              f"{flat['weber_percent']:>6.2f}%"
              f" | {busy['rms_levels']:>19.2f}{busy['max_levels']:>5.0f}{busy['weber_percent']:>6.2f}%")  # fmt: skip
        windows = [(fy, fx)] if category == "gradient" else [(fy, fx), (by, bx)]
        if category == "gradient" or len(crops_clean) == len(gradients):  # every gradient, the first photo
            for y, x in windows:
                crops_clean.append(clean[:, y : y + SIDE, x : x + SIDE])
                crops_marked.append(marked[:, y : y + SIDE, x : x + SIDE])
    if args.picture:
        save_png(residual_grid(torch.stack(crops_clean), torch.stack(crops_marked)), args.picture)
        print(f"picture (100% crops: each gradient's flattest window, then a photo's flattest and busiest; "
              f"clean / fingerprinted / amplified residual): {args.picture}")


if __name__ == "__main__":
    main()
