"""Which JPEG chroma subsampling keeps an any-size codec's fingerprint better: 4:4:4 or 4:2:0.

`ganprint codec embed --format jpeg` writes with ganprint.image_files.JPEG_SUBSAMPLING; this measures the
choice. Held-out photos (scikit-image's astronaut, chelsea, coffee, motorcycle; none trains codec-any)
at their native size get a random fingerprint each, are written as JPEG at each quality with both
subsamplings (interleaved, the same marked image for both), read back and decoded. Prints bit accuracy
and file size per setting and the 4:4:4 / 4:2:0 ratios.

Usage: python benchmarks/bench_jpeg_subsampling.py [--model codec-any | MODEL_DIR] [--quality 90 75 50]
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import torch
from PIL import Image

from ganprint.codec.importing import load_codec

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png"]
SUBSAMPLINGS = ["4:4:4", "4:2:0"]


def held_out_photos() -> list[tuple[str, Image.Image]]:
    from pathlib import Path

    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [(name, Image.open(folder / name).convert("RGB")) for name in PHOTOS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="codec-any", help="an any-size codec: shipped name or model folder")
    parser.add_argument("--quality", type=int, nargs="+", default=[90, 75, 50])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    codec = load_codec(args.model)
    if not getattr(codec, "any_size", False):
        raise SystemExit(f"{args.model} is not an any-size codec")
    g = torch.Generator().manual_seed(args.seed)
    length = codec.config.fingerprint_length
    results = {(q, s): {"accuracy": [], "bytes": []} for q in args.quality for s in SUBSAMPLINGS}
    for name, photo in held_out_photos():
        bits = torch.randint(0, 2, (length,), generator=g).float()
        marked = codec.embed(photo, bits)
        for q in args.quality:
            for s in SUBSAMPLINGS:  # interleaved: both settings on the same marked image, one after the other
                buffer = io.BytesIO()
                marked.save(buffer, "JPEG", quality=q, subsampling=s)
                back = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
                read = codec.decode_logits([back])[0] > 0
                results[q, s]["accuracy"].append(float((read == (bits > 0.5)).float().mean()))
                results[q, s]["bytes"].append(buffer.tell())
        print(f"{name} {photo.size[0]}x{photo.size[1]} done", flush=True)
    print(f"\nmodel {args.model}; {len(PHOTOS)} held-out photos at native size; mean over photos")
    print(f"{'quality':>7} {'subsampling':>11} {'bit accuracy':>12} {'min':>6} {'kB':>7}")
    for q in args.quality:
        for s in SUBSAMPLINGS:
            r = results[q, s]
            print(f"{q:>7} {s:>11} {np.mean(r['accuracy']):>12.4f} {min(r['accuracy']):>6.3f} {np.mean(r['bytes']) / 1e3:>7.1f}")
        full, half = results[q, "4:4:4"], results[q, "4:2:0"]
        print(f"{q:>7} {'ratio':>11} {np.mean(full['accuracy']) / np.mean(half['accuracy']):>12.3f} {'':>6} "
              f"{np.mean(full['bytes']) / np.mean(half['bytes']):>7.2f}  (4:4:4 / 4:2:0)")  # fmt: skip


if __name__ == "__main__":
    main()
