"""The held-out evaluation set: photographs and digital artwork no ganprint codec was trained on.

Training photos come from scikit-image, scikit-learn and Debian's plasma-workspace-wallpapers; this
set comes from other Debian packages (docs/heldout.md): the photographs of lomiri-wallpapers (pulled
in with ukui-wallpapers) and mate-backgrounds, and the digital artwork of ukui-wallpapers,
mate-backgrounds, gnome-backgrounds (fine repeated patterns: grid, pixels, truchet) and
sway-backgrounds. Nothing is committed: this module rebuilds the set deterministically.

The set (each image with a category: photo / artwork / texture / gradient, in manifest.csv):
  native    every distinct source image at its own size (256 px to 6000x4000), as the package ships it
  resized   `--count` downscaled copies, cropped to one of several aspect ratios (portrait included),
            long side 256 px to 3840 px
  derived   hard textures made from held-out photos: fine repeated patterns, motion blur, sensor-like
            noise, rendered text (PIL's built-in font), and smooth 8-bit gradients

    python benchmarks/heldout_photos.py --output heldout/ [--count 120]

For benchmarks:
    from heldout_photos import heldout_images, heldout_crops
    heldout_images("heldout/", min_side=256, max_side=4096)   # [(name, RGB PIL image)], built set
    heldout_images(None, max_side=1024)                       # the same images, made in memory
    heldout_crops(1000, 32, "heldout/")                       # 32x32 crops of every distinct image
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path("/usr/share/backgrounds")
PACKAGES = ["ukui-wallpapers", "lomiri-wallpapers", "mate-backgrounds", "gnome-backgrounds", "sway-backgrounds"]
APT_INSTALL = f"apt-get install -y --no-install-recommends {' '.join(PACKAGES)}"
CATEGORIES = ("photo", "artwork", "texture", "gradient")
MANIFEST = "manifest.csv"
FIELDS = ["file", "category", "kind", "width", "height", "package", "source", "derivation"]

# (package, category, files under ROOT). Left out on purpose: duplicates at other sizes (Elephants,
# the sway variants), lomiri-default-background.png (a link to warty-final-ubuntu.png), gnome's vnc-*
# (flat colour, 256 px: the no-signal case, tested elsewhere) and its SVGs (PIL cannot read them).
_LOMIRI_PHOTOS = """Bridge_by_Sander_Klootwijk.jpg Dragonfly_by_Bolly.jpg Picture_0B_by_freespace.jpg
    Picture_1A_by_freespace.jpg Wine_by_Jakkub_Mede.jpg aitzgorri_by_Aitzol_Berasategi.jpg
    analogpattern_by_Peter_Nerlich.jpg free_by_Peter_Nerlich.jpg friends_by_Aitzol_Berasategi.jpg
    greentock_by_Peter_Nerlich.jpg life_by_Aitzol_Berasategi.jpg picosdeeuropa_by_Aitzol_Berasategi.jpg
    seeding_by_Clements_Engelhardt.jpg sunset_by_Aitzol_Berasategi.jpg Infinite-Sea_by_Aury88.jpg
    Kleiber_by_Lukas_Baubkus.jpg"""
_LOMIRI_ART = "umang_by_Abhishek_Mudgal.jpg Fossa_by_Jasper_Roks.jpg Painting-Colors_by__herobrine7gamer.jpg warty-final-ubuntu.png"
_UKUI_ART = """2004default.jpg calla.png city.png desert.png firstgeneration.jpg fluent-color.png
    focal-ubuntukylin.png goldfish.png rhythm.jpg rollpaper.png string.jpg the-mouse.jpg"""
_MATE_NATURE = "Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood YellowFlower"
_MATE_ART = """abstract/Arc-Colors-Transparent-Wallpaper.png abstract/Elephants_3840x2160.jpg abstract/Flow.png
    abstract/Gulp.png abstract/Silk.png abstract/Spring.png abstract/Waves.png desktop/Float-into-MATE.png
    desktop/GreenTraditional.jpg desktop/MATE-Stripes-Dark.png desktop/MATE-Stripes-Light.png
    desktop/Stripes.png desktop/Ubuntu-Mate-Cold-no-logo.png desktop/Ubuntu-Mate-Dark-no-logo.png
    desktop/Ubuntu-Mate-Radioactive-no-logo.png desktop/Ubuntu-Mate-Warm-no-logo.png"""
_GNOME_ART = " ".join(f"gnome/{n}-{v}.webp" for n in
                      ("adwaita", "grid", "licorice", "pixels", "symbolic", "truchet", "wood") for v in "dl")
_SWAY_ART = "sway/Sway_Wallpaper_Blue_1920x1080.png sway/Sway_Wallpaper_Blue_1136x640_Portrait.png"
SOURCES: list[tuple[str, str, str]] = [
    *(("lomiri-wallpapers", "photo", f) for f in _LOMIRI_PHOTOS.split()),
    *(("mate-backgrounds", "photo", f"mate/nature/{n}.jpg") for n in _MATE_NATURE.split()),
    *(("lomiri-wallpapers", "artwork", f) for f in _LOMIRI_ART.split()),
    *(("ukui-wallpapers", "artwork", f) for f in _UKUI_ART.split()),
    *(("mate-backgrounds", "artwork", f"mate/{f}") for f in _MATE_ART.split()),
    *(("gnome-backgrounds", "artwork", f) for f in _GNOME_ART.split()),
    *(("sway-backgrounds", "artwork", f) for f in _SWAY_ART.split()),
]  # fmt: skip

# Downscaled copies: long sides and aspect ratios (width:height) cycled over the sources.
LONG_SIDES = (256, 384, 512, 640, 768, 1024, 1280, 1600, 1920, 2560, 3840)
ASPECTS = ((1, 1), (4, 3), (3, 4), (16, 9), (9, 16), (3, 2), (2, 3), (2, 1), (21, 9))
# Transparent overlays are shown on a desktop colour; this one stands in for it.
DESKTOP_COLOUR = (46, 74, 98)


class MissingPackageError(Exception):
    """A source file is missing: its Debian package is not installed."""


@dataclass(frozen=True)
class Item:
    """One image of the set: what it is and how to make it (make() returns an RGB image)."""

    file: str
    category: str
    kind: str  # native | resized | derived
    width: int
    height: int
    package: str
    source: str
    derivation: str
    make: Callable[[], Image.Image]

    def row(self) -> dict:
        return {f: getattr(self, f) for f in FIELDS}


# ------------------------------------------------------------------------------------- sources
def check_sources() -> None:
    missing = sorted({pkg for pkg, _, rel in SOURCES if not (ROOT / rel).is_file()})
    if missing:
        raise MissingPackageError(f"held-out images missing ({', '.join(missing)}); install them with: {APT_INSTALL}")


def load_rgb(path: Path) -> Image.Image:
    """A source image as RGB; transparent overlays composited on the desktop colour."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, DESKTOP_COLOUR + (255,))
            return Image.alpha_composite(canvas, rgba).convert("RGB")
        return im.convert("RGB")


def _stem(rel: str) -> str:
    return Path(rel).stem.replace(" ", "_")


def _fit_aspect(w: int, h: int, aspect: tuple[int, int]) -> tuple[int, int]:
    """The largest (width, height) of aspect `aspect` inside w x h."""
    a = aspect[0] / aspect[1]
    return (w, max(1, round(w / a))) if w / h <= a else (max(1, round(h * a)), h)


def _resized(path: Path, box: tuple[int, int, int, int], size: tuple[int, int]) -> Callable[[], Image.Image]:
    return lambda: load_rgb(path).crop(box).resize(size, Image.LANCZOS)


def _source_items(count: int, seed: int) -> tuple[list[Item], list[Item]]:
    natives, resized = [], []
    sizes = []
    for package, category, rel in SOURCES:
        path = ROOT / rel
        with Image.open(path) as im:
            w, h = im.size
        sizes.append((w, h))
        natives.append(Item(f"{category}-{_stem(rel)}{path.suffix.lower() if _keeps_file(path) else '.png'}",
                            category, "native", w, h, package, rel, "as shipped",
                            (lambda p=path: load_rgb(p))))  # fmt: skip
    rng = np.random.default_rng(seed)
    for i in range(count):
        k = i % len(SOURCES)
        package, category, rel = SOURCES[k]
        w, h = sizes[k]
        aspect = ASPECTS[i % len(ASPECTS)]
        cw, ch = _fit_aspect(w, h, aspect)
        # The long side of the copy: cycled, and always a real downscale of the crop.
        candidates = [s for s in LONG_SIDES if s < max(cw, ch)]
        long_side = candidates[(i // len(SOURCES) * 5 + i) % len(candidates)]
        scale = long_side / max(cw, ch)
        size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        box = (x, y, x + cw, y + ch)
        resized.append(Item(f"{category}-{_stem(rel)}-{size[0]}x{size[1]}.png", category, "resized", *size, package,
                            rel, f"crop {cw}x{ch}+{x}+{y} ({aspect[0]}:{aspect[1]}), Lanczos to {size[0]}x{size[1]}",
                            _resized(ROOT / rel, box, size)))  # fmt: skip
    return natives, resized


def _keeps_file(path: Path) -> bool:
    """Native images whose file can be copied as shipped (already RGB, so what a reader decodes)."""
    with Image.open(path) as im:
        return im.mode == "RGB"


# ---------------------------------------------------------------------------- derived textures
def _photo(rel: str, long_side: int) -> Image.Image:
    im = load_rgb(ROOT / rel)
    scale = long_side / max(im.size)
    return im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS) if scale < 1 else im


def _centre(im: Image.Image, w: int, h: int) -> Image.Image:
    x, y = (im.width - w) // 2, (im.height - h) // 2
    return im.crop((x, y, x + w, y + h))


def _cover(rel: str, w: int, h: int) -> Image.Image:
    """The middle w x h of a photo scaled down (never up) to just cover w x h."""
    im = load_rgb(ROOT / rel)
    scale = max(w / im.width, h / im.height)
    if scale < 1:
        im = im.resize((math.ceil(im.width * scale), math.ceil(im.height * scale)), Image.LANCZOS)
    return _centre(im, w, h)


def _to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.round(array * 255), 0, 255).astype(np.uint8))


def tiled_pattern(rel: str, patch: int, size: tuple[int, int]) -> Image.Image:
    """The busiest `patch`-px square of a photo (highest spread among a grid of candidates) repeated
    over the image: a fine periodic texture."""
    im = _photo(rel, 1024)
    a = np.asarray(im, dtype=np.float32)
    spots = [(x, y) for y in range(0, im.height - patch, im.height // 16) for x in range(0, im.width - patch, im.width // 16)]
    x, y = max(spots, key=lambda s: float(a[s[1] : s[1] + patch, s[0] : s[0] + patch].std()))
    tile = im.crop((x, y, x + patch, y + patch))
    out = Image.new("RGB", size)
    for y in range(0, size[1], patch):
        for x in range(0, size[0], patch):
            out.paste(tile, (x, y))
    return out


def woven(rel: str, period: int, size: tuple[int, int]) -> Image.Image:
    """A photo seen through fine fabric: a checkerboard of `period`-px cells modulating it by +-12%."""
    x = np.asarray(_cover(rel, *size), dtype=np.float32) / 255
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    weave = np.where(((xx // period) + (yy // period)) % 2 == 0, 1.12, 0.88).astype(np.float32)
    return _to_image(x * weave[..., None])


def motion_blur(rel: str, length: int, degrees: float, size: tuple[int, int]) -> Image.Image:
    """A camera shake: the mean of `length` copies shifted along a line at `degrees`."""
    pad = length
    x = np.asarray(_cover(rel, size[0] + 2 * pad, size[1] + 2 * pad), dtype=np.float32) / 255
    a = math.radians(degrees)
    acc = np.zeros((size[1], size[0], 3), np.float32)
    for t in range(length):
        d = t - (length - 1) / 2
        dx, dy = round(d * math.cos(a)), round(d * math.sin(a))
        acc += x[pad + dy : pad + dy + size[1], pad + dx : pad + dx + size[0]]
    return _to_image(acc / length)


def sensor_noise(rel: str, exposure: float, full_well: float, read_noise: float, size: tuple[int, int],
                 seed: int) -> Image.Image:  # fmt: skip
    """A photo as a small sensor takes it in low light: shot noise (Poisson, per colour channel) on
    `exposure` times the light, read noise, then the gain that brings the exposure back."""
    rng = np.random.default_rng(seed)
    x = np.asarray(_cover(rel, *size), dtype=np.float64) / 255
    linear = (x ** 2.2) * exposure * full_well  # electrons
    electrons = rng.poisson(linear) + rng.normal(0, read_noise, linear.shape)
    back = np.clip(electrons / (exposure * full_well), 0, 1) ** (1 / 2.2)
    return _to_image(back)


_TEXT = ("Every image a model publishes carries its fingerprint. The detector reads the bits back, "
         "counts how many match, and turns the count into a p-value. 0123456789 (+-*/=) [ABC] {xyz} "
         "Quick brown foxes jump over lazy dogs; sphinx of black quartz, judge my vow. ")  # fmt: skip


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > width and line:
            lines.append(line)
            line = word
        else:
            line = trial
    return [*lines, line]


def text_page(size: tuple[int, int], sizes: tuple[int, ...], dark: bool) -> Image.Image:
    """A document or screen of text at several font sizes (PIL's built-in font: works offline)."""
    bg, fg = ((30, 30, 34), (220, 220, 210)) if dark else ((250, 249, 245), (20, 20, 24))
    im = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(im)
    y, margin, i = 20, 24, 0
    while y < size[1] - 10:
        font = ImageFont.load_default(size=sizes[i % len(sizes)])
        for line in _wrap(draw, _TEXT * 2, font, size[0] - 2 * margin)[:4]:
            draw.text((margin, y), line, fill=fg, font=font)
            y += int(sizes[i % len(sizes)] * 1.3)
        y += sizes[i % len(sizes)]
        i += 1
    return im


def text_on_photo(rel: str, size: tuple[int, int]) -> Image.Image:
    """A captioned photo: large outlined text and a small credit line over the picture."""
    im = _cover(rel, *size)
    draw = ImageDraw.Draw(im)
    big = ImageFont.load_default(size=size[1] // 9)
    draw.text((size[0] // 2, size[1] // 10), "FINGERPRINTED?", font=big, fill="white", anchor="mt",
              stroke_width=max(2, size[1] // 200), stroke_fill="black")  # fmt: skip
    small = ImageFont.load_default(size=max(10, size[1] // 60))
    draw.text((12, size[1] - 12), "photo: held-out set, Debian wallpaper package", font=small, fill=(255, 255, 255),
              anchor="lb")  # fmt: skip
    return im


def gradient(size: tuple[int, int], stops: list[tuple[int, int, int]], radial: bool) -> Image.Image:
    """A smooth 8-bit gradient through colour `stops` (rounded, no dithering: banding as files have it)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if radial:
        t = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / math.sqrt(2)
    else:
        t = (xx / max(1, w - 1) * 0.7 + yy / max(1, h - 1) * 0.3)
    t = np.clip(t, 0, 1) * (len(stops) - 1)
    i = np.minimum(t.astype(int), len(stops) - 2)
    f = (t - i)[..., None]
    colours = np.asarray(stops, dtype=np.float64) / 255
    return _to_image(colours[i] * (1 - f) + colours[i + 1] * f)


def _derived_items(seed: int) -> list[Item]:
    p = {n: f"mate/nature/{n}.jpg" for n in _MATE_NATURE.split()} | {
        _stem(f).split("_by_")[0]: f for f in _LOMIRI_PHOTOS.split()}  # fmt: skip
    specs: list[tuple[str, str, str, str, tuple[int, int], Callable[[], Image.Image]]] = []

    def add(name, category, rel, derivation, size, make):
        specs.append((name, category, rel, derivation, size, make))

    for rel, patch, size in ((p["Dragonfly"], 8, (1024, 1024)), (p["GreenMeadow"], 5, (1920, 1080)),
                             (p["Wine"], 16, (768, 1024)), (p["analogpattern"], 3, (512, 512))):  # fmt: skip
        add(f"tile{patch}-{_stem(rel)}", "texture", rel, f"{patch}x{patch} patch repeated", size,
            lambda r=rel, k=patch, s=size: tiled_pattern(r, k, s))
    for rel, period, size in ((p["Bridge"], 2, (1920, 1080)), (p["RainDrops"], 1, (640, 480))):
        add(f"weave{period}-{_stem(rel)}", "texture", rel, f"checkerboard {period} px, +-12%", size,
            lambda r=rel, k=period, s=size: woven(r, k, s))
    for rel, length, deg, size in ((p["Kleiber"], 31, 0, (1920, 1080)), (p["life"], 15, 35, (1024, 768)),
                                   (p["LadyBird"], 61, 80, (1080, 1350)), (p["sunset"], 9, 150, (512, 512))):
        add(f"motion{length}-{_stem(rel)}", "texture", rel, f"motion blur {length} px at {deg} degrees", size,
            lambda r=rel, n=length, d=deg, s=size: motion_blur(r, n, d, s))
    for k, (rel, exposure, well, read, size) in enumerate(
            ((p["friends"], 0.05, 2000, 4.0, (1920, 1080)), (p["Garden"], 0.2, 800, 3.0, (1024, 768)),
             (p["picosdeeuropa"], 0.02, 4000, 6.0, (768, 1024)), (p["Storm"], 0.5, 300, 2.0, (512, 384)))):
        add(f"noise{k}-{_stem(rel)}", "texture", rel,
            f"shot noise at exposure {exposure} of {well} e-, read noise {read} e-", size,
            lambda r=rel, e=exposure, fw=well, rn=read, s=size, k=k: sensor_noise(r, e, fw, rn, s, seed + k))
    add("text-page", "texture", "", "text at 12-28 px, light", (1240, 1754),
        lambda: text_page((1240, 1754), (12, 16, 20, 28), dark=False))
    add("text-screen", "texture", "", "text at 11-18 px, dark theme", (1280, 800),
        lambda: text_page((1280, 800), (11, 14, 18), dark=True))
    add("text-small", "texture", "", "text at 10-13 px, light", (512, 384),
        lambda: text_page((512, 384), (10, 13), dark=False))
    for rel, size in ((p["Aqua"], (1920, 1080)), (p["Picture_1A"], (768, 768))):
        add(f"caption-{_stem(rel)}", "texture", rel, "caption and credit line over the photo", size,
            lambda r=rel, s=size: text_on_photo(r, s))
    for name, size, stops, radial in (
            ("sky", (1920, 1080), [(40, 80, 160), (120, 170, 230), (250, 210, 170)], False),
            ("radial", (1024, 1024), [(250, 250, 245), (160, 160, 170)], True),
            ("dusk-4k", (3840, 2160), [(10, 10, 30), (60, 40, 90), (200, 110, 80)], False),
            ("dark", (512, 512), [(8, 8, 10), (28, 26, 30)], False),
            ("portrait", (1080, 1920), [(240, 230, 220), (200, 140, 150)], True)):
        add(f"gradient-{name}", "gradient", "", f"{'radial' if radial else 'linear'} gradient, {len(stops)} stops",
            size, lambda s=size, c=stops, r=radial: gradient(s, c, r))
    items = []
    for name, category, rel, derivation, size, make in specs:
        package = next((pkg for pkg, _, r in SOURCES if r == rel), "")
        items.append(Item(f"{'' if name.startswith('gradient') else category + '-'}{name}.png", category,
                          "derived", *size, package, rel, derivation, make))  # fmt: skip
    return items


# ------------------------------------------------------------------------------------ the set
def plan(count: int = 120, seed: int = 0) -> list[Item]:
    """Every image of the set, in manifest order (nothing decoded yet)."""
    check_sources()
    natives, resized = _source_items(count, seed)
    return natives + resized + _derived_items(seed)


def build(output: str | os.PathLike, count: int = 120, seed: int = 0, progress: bool = True) -> list[Item]:
    """Write the set and its manifest.csv to `output` (files written whole: temp file + rename)."""
    items = plan(count, seed)  # first: a missing package leaves nothing behind
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    for n, item in enumerate(items, 1):
        target = out / item.file
        if not target.exists():
            tmp = target.with_name(f".{target.name}.tmp")
            if item.kind == "native" and target.suffix != ".png":
                shutil.copyfile(ROOT / item.source, tmp)
            else:
                item.make().save(tmp, format="PNG")
            os.replace(tmp, target)
        if progress:
            print(f"\r{n}/{len(items)} {item.file:<70}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    with tempfile.NamedTemporaryFile("w", newline="", dir=out, delete=False, suffix=".tmp") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(item.row() for item in items)
    os.replace(f.name, out / MANIFEST)
    return items


def read_manifest(folder: str | os.PathLike) -> list[Item]:
    """The items of a built set (make() opens the file)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the set with python benchmarks/heldout_photos.py --output {folder}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [Item(r["file"], r["category"], r["kind"], int(r["width"]), int(r["height"]), r["package"], r["source"],
                 r["derivation"], (lambda p=folder / r["file"]: load_rgb(p))) for r in rows]  # fmt: skip


def _items(folder, count: int, seed: int) -> list[Item]:
    return read_manifest(folder) if folder is not None else plan(count, seed)


def _select(items: list[Item], min_side: int, max_side: int, categories, kinds) -> list[Item]:
    return [it for it in items if min(it.width, it.height) >= min_side and max(it.width, it.height) <= max_side
            and (categories is None or it.category in categories) and (kinds is None or it.kind in kinds)]  # fmt: skip


def iter_heldout_images(folder: str | os.PathLike | None = None, min_side: int = 0, max_side: int = 1 << 30,
                        categories=None, kinds=None, count: int = 120,
                        seed: int = 0) -> Iterator[tuple[str, Image.Image]]:  # fmt: skip
    """(name, RGB image) of the set one at a time (a set of 4K images does not fit in memory at
    once): from a built `folder`, or made on the fly when it is None. An image is kept when its short
    side is >= min_side and its long side <= max_side (and its category / kind is in the given ones)."""
    for item in _select(_items(folder, count, seed), min_side, max_side, categories, kinds):
        yield Path(item.file).stem, item.make()


def heldout_images(folder: str | os.PathLike | None = None, min_side: int = 0, max_side: int = 1 << 30,
                   categories=None, kinds=None, count: int = 120, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """The list of iter_heldout_images: [(name, RGB PIL image)]."""
    return list(iter_heldout_images(folder, min_side, max_side, categories, kinds, count, seed))


def heldout_categories(folder: str | os.PathLike | None = None, count: int = 120, seed: int = 0) -> dict[str, str]:
    """name -> category, for reporting per category."""
    return {Path(it.file).stem: it.category for it in _items(folder, count, seed)}


def heldout_crops(count: int, size: int, folder: str | os.PathLike | None = None, seed: int = 0,
                  categories=None) -> list[tuple[str, Image.Image]]:  # fmt: skip
    """`count` deterministic square crops, resized to size x size (bicubic, as ganprint's preprocessing),
    spread evenly over every distinct image of the set (the native sources and the derived textures,
    not the resized copies). Crop sides are log-uniform from `size` to the image's short side, at a
    random place: from a close-up of the finest texture to the whole picture. Returns (name, image)."""
    items = _select(_items(folder, 0, seed), size, 1 << 30, categories, ("native", "derived"))
    if not items:
        raise ValueError("no held-out images to crop from")
    rng = np.random.default_rng(seed)
    crops = []
    for k, item in enumerate(items):
        n = count // len(items) + (k < count % len(items))
        if n == 0:
            continue
        im = item.make()
        w, h = im.size
        for j in range(n):
            side = int(round(math.exp(rng.uniform(math.log(size), math.log(min(w, h))))))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = im.crop((x, y, x + side, y + side))
            crops.append((f"{Path(item.file).stem}#{j}", crop if side == size else crop.resize((size, size), Image.BICUBIC)))
        del im
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="example: python benchmarks/heldout_photos.py --output heldout/ --count 120")
    parser.add_argument("--output", required=True, help="folder to write the images and manifest.csv to")
    parser.add_argument("--count", type=int, default=120, help="downscaled copies of the source images (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.count < 0:
        raise SystemExit("error: --count must be >= 0")
    try:
        items = build(args.output, args.count, args.seed)
    except MissingPackageError as exc:
        raise SystemExit(f"error: {exc}")
    counts = {c: sum(it.category == c for it in items) for c in CATEGORIES}
    sources = sum(it.kind == "native" for it in items)
    print(f"{len(items)} images in {args.output} ({sources} distinct sources; "
          + ", ".join(f"{n} {c}" for c, n in counts.items()) + f"); manifest: {Path(args.output) / MANIFEST}")


if __name__ == "__main__":
    main()
