"""Training photos of the shipped any-size codec `codec-any`: a folder of PNGs.

Sources (none of them is in the held-out set of benchmarks/heldout_photos.py, which comes from other
Debian packages, nor in the built-in sample crops): photos and textures bundled with scikit-image, and
the wallpapers of Debian's `plasma-workspace-wallpapers` (photographs and digital artwork, up to 5K).
Each source is written once, its long side capped at 2048 px; the trainer crops it at many scales.

    apt-get install -y plasma-workspace-wallpapers
    pip install -e ".[assets]"
    python recipes/codec-any/make_training_set.py WORK/train-photos --calibration WORK/calibration

`--calibration DIR` also writes clean crops of many sizes and aspect ratios (64 px to 1024 px) of the
same photos: what `ganprint calibrate` measures the codec's bits on when nothing is hidden in them.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from PIL import Image

WALLPAPERS = Path("/usr/share/wallpapers")
# scikit-image's bundled files (no download): photos and hard textures (text, brick, gravel, grass). Left
# out: the astronaut (the photo `ganprint demo` shows) and the five photos of the built-in sample crops
# (chelsea, coffee, the motorcycle pair; scikit-learn's china and flower): they stay unseen.
SKIMAGE = ["brick.png", "camera.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
           "page.png", "retina.jpg", "rocket.jpg", "text.png", "clock_motion.png", "moon.png", "color.png"]  # fmt: skip


def sources() -> list[tuple[str, Path]]:
    import skimage

    out = [(f"skimage-{n}", Path(skimage.__file__).parent / "data" / n) for n in SKIMAGE]
    if not WALLPAPERS.is_dir():
        sys.exit(f"error: {WALLPAPERS} not found; install it with: apt-get install -y plasma-workspace-wallpapers")
    for theme in sorted(WALLPAPERS.iterdir()):
        images = sorted((theme / "contents" / "images").glob("*.*"))
        images = [p for p in images if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
        if images:  # the largest rendition of each wallpaper
            best = max(images, key=lambda p: Image.open(p).size[0] * Image.open(p).size[1])
            out.append((f"plasma-{theme.name}", best))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--max-side", type=int, default=2048)
    parser.add_argument("--calibration", type=Path, default=None, help="also write clean crops here")
    parser.add_argument("--crops", type=int, default=1000, help="how many calibration crops")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    photos = []
    for name, path in sources():
        im = Image.open(path)
        im = im.convert("RGB")
        scale = min(1.0, args.max_side / max(im.size))
        if scale < 1:
            im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.Resampling.LANCZOS)
        im.save(args.output / f"{Path(name).stem}.png")
        photos.append(im)
        print(f"{name}: {im.size[0]}x{im.size[1]}")
    if args.calibration is not None:
        write_crops(photos, args.calibration, args.crops)


def write_crops(photos: list[Image.Image], folder: Path, count: int, seed: int = 0) -> None:
    """`count` random crops (side 64-1024 px, aspect 1:2 to 2:1, resized to at most 512 px) as JPEG 95."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        im = photos[rng.randrange(len(photos))]
        aspect = 2 ** rng.uniform(-1, 1)
        h = int(min(im.height, im.width / aspect, 2 ** rng.uniform(6, 10)))
        w = max(64, int(h * aspect))
        h = max(64, h)
        x, y = rng.randrange(im.width - w + 1), rng.randrange(im.height - h + 1)
        crop = im.crop((x, y, x + w, y + h))
        scale = min(1.0, 512 / max(crop.size))
        if scale < 1:
            crop = crop.resize((max(64, round(w * scale)), max(64, round(h * scale))), Image.Resampling.LANCZOS)
        crop.save(folder / f"crop-{i:05d}.jpg", quality=95)
    print(f"{count} calibration crops in {folder}")


if __name__ == "__main__":
    main()
