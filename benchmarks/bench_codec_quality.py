"""Quality of a codec on held-out images, through real PNG files.

For each held-out set: embed a fresh random fingerprint per image, write the result as PNG, read the
PNG back, decode; report bit accuracy, PSNR, and the detection rate at the default false-positive
rate. Clean images are decoded against the same fingerprints as controls (bit accuracy should be 0.5,
detections 0).

Held-out sets (none was used to train the shipped codec):
  samples        the 64 built-in crops of five held-out photos
  photo-crops    random crops (32 px to full size) of the same five held-out photos
  fashion-test   Fashion-MNIST test split (needs the Debian package dataset-fashion-mnist)
  lfw-faces      scikit-image's LFW face subset (needs scikit-image)
With --heldout DIR (the set of benchmarks/heldout_photos.py, from other sources; docs/heldout.md):
  heldout-photo    --count crops of its 28 photographs (crop sides log-uniform, 32 px to full size)
  heldout-artwork  --count crops of its 48 digital artworks
  heldout-texture  --count crops of its hard textures (patterns, motion blur, noise, text) and gradients
  heldout-whole    every image of the set whole, resized and centre-cropped as ganprint does

Usage: python benchmarks/bench_codec_quality.py [--model codec-32] [--count 1000] [--heldout DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

from ganprint.codec.importing import load_codec
from ganprint.data import load_image, open_source, pil_to_tensor, preprocess, tensor_to_pil
from ganprint.errors import GanprintError

HELD_OUT_PHOTOS = ["chelsea.png", "coffee.png", "motorcycle_right.png"]


def held_out_photo_crops(count: int, seed: int = 0) -> list[Image.Image]:
    import skimage.data
    import sklearn.datasets

    paths = [os.path.join(os.path.dirname(skimage.data.__file__), n) for n in HELD_OUT_PHOTOS]
    sk_images = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    paths += [os.path.join(sk_images, n) for n in ("china.jpg", "flower.jpg")]
    photos = [Image.open(p).convert("RGB") for p in paths]
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        w, h = photo.size
        side = int(rng.integers(32, min(w, h) + 1))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crops.append(photo.crop((x, y, x + side, y + side)))
    return crops


def lfw_faces(count: int) -> list[Image.Image]:
    import skimage.data

    faces = np.load(os.path.join(os.path.dirname(skimage.data.__file__), "lfw_subset.npy"))
    return [Image.fromarray((f * 255).round().astype(np.uint8)).convert("RGB") for f in faces[:count]]


def heldout_crops(folder: str, categories: tuple[str, ...], count: int, resolution: int, seed: int) -> list[Image.Image]:
    from heldout_photos import heldout_crops as crops

    return [im for _, im in crops(count, resolution, folder, seed, categories)]


def heldout_whole(folder: str, resolution: int) -> list[Image.Image]:
    from heldout_photos import iter_heldout_images

    return [preprocess(im, resolution) for _, im in iter_heldout_images(folder)]


def from_source(spec: str, count: int) -> list[Image.Image]:
    source = open_source(spec)
    return [source.image(i) for i in range(min(count, len(source)))]


def evaluate(codec, images: list[Image.Image], seed: int, workdir: str) -> dict:
    r, length = codec.config.resolution, codec.config.fingerprint_length
    clean = torch.stack([pil_to_tensor(preprocess(im, r)) for im in images])
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (len(images), length), generator=g).float()
    marked = codec.embed(clean, bits).cpu()
    reloaded = []
    for i, image in enumerate(marked):  # through real PNG files
        path = os.path.join(workdir, f"{i:05d}.png")
        tensor_to_pil(image).save(path)
        reloaded.append(pil_to_tensor(load_image(path)))
    reloaded = torch.stack(reloaded)
    on_marked = codec.detect(reloaded, expected=bits)
    on_clean = codec.detect(clean, expected=bits)
    mse = (reloaded - clean).pow(2).mean((1, 2, 3)).clamp_min(1e-12)
    psnr = 10 * torch.log10(1 / mse)
    return {
        "images": len(images),
        "bit_accuracy": on_marked.bit_accuracy.mean().item(),
        "min_bit_accuracy": on_marked.bit_accuracy.min().item(),
        "below_0_99": int((on_marked.bit_accuracy < 0.99).sum()),
        "detected": sum(on_marked.detected) / len(images),
        "psnr": psnr.mean().item(),
        "min_psnr": psnr.min().item(),
        "clean_bit_accuracy": on_clean.bit_accuracy.mean().item(),
        "clean_bit_accuracy_max": on_clean.bit_accuracy.max().item(),
        "clean_detected": sum(on_clean.detected),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Held-out quality of a codec through PNG files.")
    parser.add_argument("--model", default="codec-32", help="codec name or folder (default: the shipped codec-32)")
    parser.add_argument("--count", type=int, default=1000, help="images per generated set")
    parser.add_argument("--heldout", default=None, metavar="DIR",
                        help="also measure on the held-out set built by benchmarks/heldout_photos.py in DIR")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(2)
    codec = load_codec(args.model)
    sets = {
        "samples": lambda: from_source("samples", 64),
        "photo-crops": lambda: held_out_photo_crops(args.count, args.seed),
        "fashion-test": lambda: from_source("fashion-mnist:test", args.count),
        "lfw-faces": lambda: lfw_faces(args.count),
    }
    if args.heldout:
        r = codec.config.resolution
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        sets |= {
            "heldout-photo": lambda: heldout_crops(args.heldout, ("photo",), args.count, r, args.seed),
            "heldout-artwork": lambda: heldout_crops(args.heldout, ("artwork",), args.count, r, args.seed),
            "heldout-texture": lambda: heldout_crops(args.heldout, ("texture", "gradient"), args.count, r, args.seed),
            "heldout-whole": lambda: heldout_whole(args.heldout, r),
        }
    c = codec.config
    print(f"codec {args.model or 'codec-32'}: {c.arch}, {c.resolution}px, {c.fingerprint_length} bits; "
          "PNG round trip; FPR 1e-6")  # fmt: skip
    print(f"{'set':<16}{'images':>7}{'bit acc':>9}{'min':>7}{'<0.99':>6}{'detect':>8}{'PSNR':>7}{'min':>7}"
          f"{'clean acc':>11}{'clean max':>10}{'FP':>4}")  # fmt: skip
    results = {}
    for name, make in sets.items():
        try:
            images = make()
        except (GanprintError, ImportError, OSError, ValueError) as exc:
            print(f"{name:<16} skipped: {exc}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            res = evaluate(codec, images, args.seed, tmp)
        results[name] = res
        print(
            f"{name:<16}{res['images']:>7}{res['bit_accuracy']:>9.4f}{res['min_bit_accuracy']:>7.2f}{res['below_0_99']:>6}"
            f"{res['detected']:>8.3f}{res['psnr']:>7.1f}{res['min_psnr']:>7.1f}"
            f"{res['clean_bit_accuracy']:>11.3f}{res['clean_bit_accuracy_max']:>10.2f}{res['clean_detected']:>4}"
        )
    clean = sum(r["images"] for r in results.values())
    print(f"clean images: {clean}, false positives: {sum(r['clean_detected'] for r in results.values())}; "
          f"fingerprinted images below 0.99: {sum(r['below_0_99'] for r in results.values())}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if not math.isfinite(sum(r["psnr"] for r in results.values())):
        raise SystemExit("non-finite PSNR")


if __name__ == "__main__":
    main()
