"""Build the training set of the shipped codec `codec-32` (a zip of 32x32 PNGs).

Sources, all on this machine without downloads:
- random square crops (any size from 32 px to the short side, flipped half the time) of the photos
  that scikit-image ships, except the five held out for the built-in sample images
  (chelsea, coffee, motorcycle_right, and scikit-learn's china and flower);
- Fashion-MNIST training images (Debian package dataset-fashion-mnist), for grey images with flat
  black backgrounds, which GAN training sets like Fashion-MNIST have and photos rarely do.

Usage: python recipes/codec-32/make_training_set.py OUT.zip [--crops 16000] [--fashion 4000]
"""

from __future__ import annotations

import argparse
import io
import os
import zipfile

import numpy as np
from PIL import Image

PHOTOS = [
    "astronaut.png", "brick.png", "camera.png", "cell.png", "clock_motion.png", "coins.png", "color.png",
    "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
    "page.png", "retina.jpg", "rocket.jpg", "text.png",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--crops", type=int, default=16000)
    parser.add_argument("--fashion", type=int, default=4000)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import skimage.data

    from ganprint.data import open_source

    rng = np.random.default_rng(args.seed)
    root = os.path.dirname(skimage.data.__file__)
    photos = [Image.open(os.path.join(root, name)).convert("RGB") for name in PHOTOS]
    r = args.resolution
    with zipfile.ZipFile(args.out, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(args.crops):
            photo = photos[rng.integers(len(photos))]
            w, h = photo.size
            side = int(rng.integers(r, min(w, h) + 1))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = photo.crop((x, y, x + side, y + side)).resize((r, r), Image.BICUBIC, reducing_gap=None)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            _write(zf, f"photos/{i:05d}.png", crop)
        if args.fashion:
            fashion = open_source("fashion-mnist:train")
            for j, k in enumerate(rng.choice(len(fashion), size=args.fashion, replace=False)):
                _write(zf, f"fashion/{j:05d}.png", fashion.image(int(k)).resize((r, r), Image.BICUBIC))
    print(f"wrote {args.crops + args.fashion} images to {args.out}")


def _write(zf: zipfile.ZipFile, name: str, image: Image.Image) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    zf.writestr(name, buf.getvalue())


if __name__ == "__main__":
    main()
