"""Build the embedded default image set `samples` (src/ganprint/assets/sample_images/).

64 RGB PNGs of 64x64: random square crops (side from 64 px up to the photo's short side) of five
photos bundled with scikit-image and scikit-learn, resized to 64 with antialiasing, seed 0. The
codec is never trained on these five photos, so the samples are held-out test images.

Needs the optional `assets` dependencies: pip install 'ganprint[assets]'. Run from anywhere:
    python scripts/make_sample_images.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
import sklearn.datasets
from PIL import Image

from ganprint.data import load_image
from ganprint.io import atomic_path, atomic_write_text

COUNT, SIZE, SEED = 64, 64, 0
OUT = Path(__file__).resolve().parent.parent / "src" / "ganprint" / "assets" / "sample_images"
SKIMAGE_DIR = Path(skimage.data.__file__).parent
SKLEARN_DIR = Path(sklearn.datasets.__file__).parent / "images"
PHOTOS = [
    SKIMAGE_DIR / "chelsea.png",
    SKIMAGE_DIR / "coffee.png",
    SKIMAGE_DIR / "motorcycle_right.png",
    SKLEARN_DIR / "china.jpg",
    SKLEARN_DIR / "flower.jpg",
]

SOURCES = """\
# Sample images: sources

`sample-00.png` ... `sample-63.png` are 64x64 crops made by `scripts/make_sample_images.py`
(random square crops, seed 0, resized with antialiasing; image k comes from photo k mod 5 in the
order below). These photos are never used to train ganprint's codecs, so the samples are
held-out test images. Licences as documented by the libraries that ship the photos:

- `chelsea.png` (Chelsea the cat), scikit-image `skimage/data`: "No copyright restrictions.
  CC0 by the photographer (Stefan van der Walt)." (docstring of `skimage.data.chelsea`)
- `coffee.png` (coffee cup), scikit-image `skimage/data`: "This photograph is courtesy of Pikolo
  Espresso Bar. [...] No copyright restrictions. CC0 by the photographer (Rachel Michetti)."
  (docstring of `skimage.data.coffee`)
- `motorcycle_right.png`, scikit-image `skimage/data`: from the Middlebury 2014 stereo benchmark
  (D. Scharstein et al., GCPR 2014; http://vision.middlebury.edu/stereo/data/scenes2014/),
  down-sampled by 4 (docstring of `skimage.data.stereo_motorcycle`). scikit-image states no
  licence for this photo; it is distributed inside the BSD-3-Clause scikit-image package.
- `china.jpg`, scikit-learn `sklearn/datasets/images`: "Released under a creative commons
  license" (https://creativecommons.org/licenses/by/2.0/, CC BY 2.0). "Attribution: Some rights
  reserved by danielbuechele", https://www.flickr.com/photos/danielbuechele/6061409035/,
  retrieved by Robert Layton (`sklearn/datasets/images/README.txt`)
- `flower.jpg`, scikit-learn `sklearn/datasets/images`: "Released under a creative commons
  license" (https://creativecommons.org/licenses/by/2.0/, CC BY 2.0). The README gives
  "Attribution: Some rights reserved by danielbuechele" with the photographer link
  https://www.flickr.com/photos/vultilion/ and the photo
  https://www.flickr.com/photos/vultilion/6056698931/, retrieved by Robert Layton
  (`sklearn/datasets/images/README.txt`)
"""


def main() -> None:
    photos = [load_image(p) for p in PHOTOS]
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob("sample-*.png"):
        stale.unlink()
    for k in range(COUNT):
        photo = photos[k % len(photos)]
        w, h = photo.size
        side = int(rng.integers(SIZE, min(w, h) + 1))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.BICUBIC)
        with atomic_path(OUT / f"sample-{k:02d}.png") as tmp:
            crop.save(tmp, format="PNG", optimize=True)
    atomic_write_text(OUT / "SOURCES.md", SOURCES)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {COUNT} images and SOURCES.md to {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
