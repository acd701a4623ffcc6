"""Peers side by side: ganprint's any-resolution codec against invisible-watermark, on held-out images.

invisible-watermark (PyPI `invisible-watermark`, the watermark of Stable Diffusion's reference
scripts) is an optional extra, never a core dependency; this script installs nothing:

    pip install -e ".[peers]"        # invisible-watermark, and onnxruntime for its rivaGan method

Methods: ganprint (`--model`, default codec-any: the codec's own fingerprint length), and
invisible-watermark's dwtDct, dwtDctSvd and rivaGan (32 bits each; they refuse images under 256x256
pixels, and rivaGan needs onnxruntime). Images: `--images` per size from the held-out set
(benchmarks/heldout_photos.py: photographs and artwork from packages no codec was trained on),
scaled to cover and centre-cropped to 256x256, 512x384 and 1920x1080.

Per method and size:
  PSNR, SSIM      fingerprinted vs original, 8-bit RGB (SSIM: scikit-image, Gaussian window)
  clean           bit accuracy of the fingerprinted image read back losslessly
  unmarked        bit accuracy read from the original images (should be 0.5: chance)
  <attack>        bit accuracy after each attack of ganprint.attacks (`--attacks`); a method that
                  refuses the attacked image (too small) counts as "ref"
  embed / detect  milliseconds per image (median over images and repeats)
  peak MB         the child process's peak RSS (ru_maxrss), and its growth after imports and model load

Every (method, size) runs in its own fresh process (peak RSS is per process); the methods alternate
in ABBA order over `--repeats` timing repeats (quality and attacks from the first), so the machine's
drift cancels in the ratios ganprint / peer printed under the table.

Until codec-any ships, `--model codec-32` exercises the code end to end; codec-32 works at 32x32, so
its figures are meaningless here (its output is scaled back up to the input's size).

Usage: python benchmarks/bench_peers.py [--model codec-any] [--images 8] [--repeats 3]
           [--methods ganprint,dwtDct,dwtDctSvd,rivaGan] [--sizes 256x256,512x384,1920x1080]
           [--heldout DIR] [--attacks SPEC] [--json OUT] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = ("dwtDct", "dwtDctSvd", "rivaGan")
SIZES = "256x256,512x384,1920x1080"
# Issue 20 item 5's attacks, as ganprint.attacks names them (`name:level`): its ANY_SIZE_ATTACKS when
# the registry has them, else this list; an attack the registry does not have is reported and skipped.
ATTACKS = ("jpeg:90,jpeg:75,jpeg:50,webp:80,rescale:0.5,rescale:0.25,crop_area:0.5,crop_area:0.25,"
           "crop_area_random:0.5,crop_area_random:0.25,rotation_reflect:2,rotation_reflect:5,contrast:0.7,"
           "contrast:1.3,saturation:0.7,saturation:1.3,brightness:0.7,brightness:1.3,screenshot:0.75")  # fmt: skip
PEER_BITS = 32


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


# ------------------------------------------------------------------------ child: test images
def prepare(folder: Path, heldout: str | None, sizes: list[tuple[int, int]], count: int) -> None:
    """`count` PNGs per size: distinct held-out photographs and artworks (alternating), scaled to cover
    the size (never up) and centre-cropped; sources too small for a size are passed over."""
    sys.path.insert(0, str(HERE))
    from itertools import chain, zip_longest

    from PIL import Image

    from heldout_photos import iter_heldout_images

    def order():  # decoded one at a time: the sources are up to 24 megapixels each
        photos = iter_heldout_images(heldout, kinds=("native",), categories=("photo",))
        art = iter_heldout_images(heldout, kinds=("native",), categories=("artwork",))
        return (x for x in chain.from_iterable(zip_longest(photos, art)) if x is not None)

    for w, h in sizes:
        out = folder / f"{w}x{h}"
        out.mkdir(parents=True, exist_ok=True)
        made = 0
        for name, im in order():
            scale = max(w / im.width, h / im.height)
            if scale > 1:
                continue
            im = im.resize((max(w, round(im.width * scale)), max(h, round(im.height * scale))), Image.LANCZOS)
            x, y = (im.width - w) // 2, (im.height - h) // 2
            im.crop((x, y, x + w, y + h)).save(out / f"{made:03d}-{name}.png")
            made += 1
            if made == count:
                break


# ------------------------------------------------------------------------ child: one method
class GanprintMethod:
    def __init__(self, model: str):
        import torch

        import ganprint

        torch.set_num_threads(2)
        self.torch = torch
        self.codec = ganprint.load_codec(model)
        self.bits = self.codec.config.fingerprint_length

    def embed(self, image, bits):
        out = self.codec.embed(image, self.torch.as_tensor(bits, dtype=self.torch.float32))
        if out.size != image.size:  # a fixed-resolution stand-in (codec-32): back to the input's size
            from PIL import Image

            out = out.resize(image.size, Image.BICUBIC)
        return out

    def decode(self, image):
        return (self.codec.decode_logits([image])[0] > 0).numpy().astype(int)


class InvisibleWatermarkMethod:
    def __init__(self, method: str):
        import cv2
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        cv2.setNumThreads(2)
        if method == "rivaGan":
            WatermarkEncoder.loadModel()  # onnxruntime and the package's ONNX files
        self.method, self.bits = method, PEER_BITS
        self.encoder_type, self.decoder_type = WatermarkEncoder, WatermarkDecoder

    def embed(self, image, bits):
        import numpy as np
        from PIL import Image

        encoder = self.encoder_type()
        encoder.set_watermark("bits", [int(b) for b in bits])
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        return Image.fromarray(np.ascontiguousarray(encoder.encode(bgr, self.method)[:, :, ::-1]).astype(np.uint8))

    def decode(self, image):
        import numpy as np

        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        try:
            return np.asarray(self.decoder_type("bits", self.bits).decode(bgr, self.method), dtype=int)
        except RuntimeError as exc:  # "image too small, should be larger than 256x256"
            if "too small" in str(exc):
                return None
            raise


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure(method_name: str, model: str, folder: Path, attacks: str, quality: bool, seed: int,
            limit: int = 0) -> dict:  # fmt: skip
    """Embed and read every image of `folder`; with `quality`, also PSNR, SSIM and the attacks."""
    import numpy as np
    import torch
    from PIL import Image
    from skimage.metrics import structural_similarity

    from ganprint.attacks import parse_attack_levels

    method = GanprintMethod(model) if method_name == "ganprint" else InvisibleWatermarkMethod(method_name)
    levels = parse_attack_levels(attacks) if quality and attacks else []
    paths = sorted(folder.glob("*.png"))[: limit or None]
    images = [Image.open(p).convert("RGB") for p in paths]
    baseline = peak_mb()
    rng = np.random.default_rng(seed)
    rows = {"embed_ms": [], "detect_ms": [], "psnr": [], "ssim": [], "clean": [], "unmarked": []}
    per_attack: dict[str, list] = {lv.label: [] for lv in levels}
    for image in images:
        bits = rng.integers(0, 2, method.bits)
        t = time.perf_counter()
        marked = method.embed(image, bits)
        rows["embed_ms"].append(1000 * (time.perf_counter() - t))
        marked = Image.fromarray(np.asarray(marked, dtype=np.uint8))  # as a lossless file holds it
        t = time.perf_counter()
        read = method.decode(marked)
        rows["detect_ms"].append(1000 * (time.perf_counter() - t))
        if not quality:
            continue
        a, b = np.asarray(image, dtype=np.float64), np.asarray(marked, dtype=np.float64)
        rows["psnr"].append(10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)))
        rows["ssim"].append(structural_similarity(np.asarray(image), np.asarray(marked), channel_axis=2,
                                                  data_range=255, gaussian_weights=True, sigma=1.5))  # fmt: skip
        rows["clean"].append(float(np.mean(read == bits)))
        unmarked = method.decode(image)
        rows["unmarked"].append(None if unmarked is None else float(np.mean(unmarked == bits)))
        tensor = torch.from_numpy(np.asarray(marked).copy()).permute(2, 0, 1).unsqueeze(0).float() / 255
        for level in levels:
            attacked = level.apply(tensor, seed=seed)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
            got = method.decode(Image.fromarray(attacked))
            per_attack[level.label].append(None if got is None else float(np.mean(got == bits)))
    return {"method": method_name, "bits": method.bits, "images": len(images), **rows, "attacks": per_attack,
            "peak_mb": peak_mb(), "baseline_mb": baseline}  # fmt: skip


# ------------------------------------------------------------------------------- the parent
def run_child(args: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        proc = subprocess.run([sys.executable, __file__, *args, "--out", out], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            return {"error": tail}
        return json.loads(Path(out).read_text())
    finally:
        os.unlink(out)


def mean(values: list) -> float | None:
    real = [v for v in values if v is not None]
    return statistics.fmean(real) if real and len(real) == len(values) else None


def fmt(value, spec: str) -> str:
    return "ref" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="codec-any", help="ganprint codec (name or folder); codec-32 as a stand-in")
    parser.add_argument("--images", type=int, default=8, help="held-out images per size")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (ABBA order of the methods)")
    parser.add_argument("--methods", default="ganprint," + ",".join(PEERS))
    parser.add_argument("--sizes", default=SIZES, help="WxH,... (default %(default)s)")
    parser.add_argument("--rivagan-sizes", default="256x256,512x384",
                        help="sizes rivaGan runs at (a 1920x1080 read takes ~90 s on a 2-core CPU)")
    parser.add_argument("--rivagan-images", type=int, default=2, help="images per size for rivaGan (slow)")
    parser.add_argument("--heldout", default=None, help="built held-out set (default: made in memory)")
    parser.add_argument("--attacks", default=None,
                        help="ganprint.attacks levels (default: its ANY_SIZE_ATTACKS, issue 20's attacks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown to this file")
    parser.add_argument("--phase", choices=["prepare", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--with-attacks", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]

    if args.phase == "prepare":
        prepare(Path(args.folder), args.heldout, sizes, args.images)
        Path(args.out).write_text("{}")
        return
    if args.phase == "measure":
        result = measure(args.method, args.model, Path(args.folder), args.attacks, args.with_attacks, args.seed,
                         args.limit)  # fmt: skip
        Path(args.out).write_text(json.dumps(result))
        return

    # The parent imports neither torch nor the peers: a child's ru_maxrss starts at its parent's.
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m != "ganprint" and m not in PEERS]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {', '.join(unknown)}; known: ganprint, {', '.join(PEERS)}")
    attacks, missing = known_attacks(args.attacks)
    if missing:
        print(f"attacks not in ganprint.attacks (skipped): {', '.join(missing)}")
    results: dict[str, dict[str, dict]] = {}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--sizes", args.sizes, "--images", str(args.images), "--seed", str(args.seed)]
        prep = run_child(["--phase", "prepare", "--folder", tmp, *common,
                          *(["--heldout", args.heldout] if args.heldout else [])])  # fmt: skip
        if "error" in prep:
            raise SystemExit(f"error: preparing the held-out images: {prep['error']}")
        for w, h in sizes:
            size = f"{w}x{h}"
            results[size] = {}
            for r in range(args.repeats):
                for m in methods if r % 2 == 0 else methods[::-1]:
                    limit = []
                    if m == "rivaGan":
                        if size not in args.rivagan_sizes.split(","):
                            results[size].setdefault(m, {"error": "not run at this size (--rivagan-sizes)"})
                            continue
                        limit = ["--limit", str(args.rivagan_images)]
                    child = ["--phase", "measure", "--method", m, "--model", args.model, "--folder",
                             str(Path(tmp) / size), "--attacks", attacks, *common, *limit]  # fmt: skip
                    res = run_child(child + (["--with-attacks"] if r == 0 else []))
                    print(f"{size} {m} repeat {r + 1}: " + (res["error"] if "error" in res else
                          f"embed {statistics.median(res['embed_ms']):.1f} ms, "
                          f"detect {statistics.median(res['detect_ms']):.1f} ms"), flush=True)  # fmt: skip
                    merge(results[size], m, res, first=r == 0)
    minutes = (time.time() - started) / 60
    labels = [a for a in attacks.split(",") if a]
    lines = table(results, methods, labels, args)
    header = (f"ganprint model {args.model}; {args.images} held-out images per size (rivaGan "
              f"{args.rivagan_images}); {args.repeats} timing "
              f"repeats; {minutes:.1f} min; bit accuracy ('ref': the method refused the image)")  # fmt: skip
    print(header)
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text(header + "\n\n" + "\n".join(lines) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "images": args.images, "repeats": args.repeats,
                                               "attacks": labels, "missing_attacks": missing, "results": results,
                                               "minutes": minutes}, indent=2))  # fmt: skip


def known_attacks(spec: str | None) -> tuple[str, list[str]]:
    """The levels of `spec` (default: the registry's ANY_SIZE_ATTACKS, else ATTACKS) that the registry
    has, as a spec, and the ones it does not have. Asked in a child: the parent does not import torch."""
    code = ("import ganprint.attacks as a; print(','.join(sorted(a.ATTACKS))); "
            "print(getattr(a, 'ANY_SIZE_ATTACKS', ''))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, _, default = out.partition("\n")
    registry = set(names.strip().split(","))
    items = [s.strip() for s in (spec or default.strip() or ATTACKS).split(",") if s.strip()]
    return ",".join(i for i in items if i.split(":")[0] in registry), [i for i in items if i.split(":")[0] not in registry]


def merge(into: dict, method: str, res: dict, first: bool) -> None:
    if "error" in res:
        into.setdefault(method, {"error": res["error"]})
        return
    entry = into.setdefault(method, {"embed_ms": [], "detect_ms": [], "peak_mb": [], "growth_mb": []})
    if "error" in entry:
        return
    entry["embed_ms"] += res["embed_ms"]
    entry["detect_ms"] += res["detect_ms"]
    entry["peak_mb"].append(res["peak_mb"])
    entry["growth_mb"].append(res["peak_mb"] - res["baseline_mb"])
    if first:
        entry["bits"], entry["images"] = res["bits"], res["images"]
        for key in ("psnr", "ssim", "clean", "unmarked"):
            entry[key] = res[key]
        entry["attacks"] = res["attacks"]


def table(results: dict, methods: list[str], labels: list[str], args) -> list[str]:
    """One Markdown table: a row per (size, method), then ratios ganprint / peer per size."""
    cols = ["size", "method", "bits", "PSNR", "SSIM", "clean", "unmarked", *labels, "embed ms", "detect ms",
            "peak MB"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for size, by_method in results.items():
        summary = {}
        for m in methods:
            e = by_method.get(m, {"error": "not run"})
            if "error" in e:
                lines.append(f"| {size} | {m} | " + f"error: {e['error']} |" + " |" * (len(cols) - 3))
                continue
            s = {"bits": e["bits"], "PSNR": mean(e["psnr"]), "SSIM": mean(e["ssim"]), "clean": mean(e["clean"]),
                 "unmarked": mean(e["unmarked"]), **{a: mean(e["attacks"].get(a, [])) for a in labels},
                 "embed ms": statistics.median(e["embed_ms"]), "detect ms": statistics.median(e["detect_ms"]),
                 "peak MB": max(e["peak_mb"])}  # fmt: skip
            summary[m] = s
            cells = [str(s["bits"]), fmt(s["PSNR"], ".1f"), fmt(s["SSIM"], ".4f"), fmt(s["clean"], ".3f"),
                     fmt(s["unmarked"], ".2f"), *(fmt(s[a], ".3f") for a in labels), fmt(s["embed ms"], ".1f"),
                     fmt(s["detect ms"], ".1f"), f"{s['peak MB']:.0f} (+{max(e['growth_mb']):.0f})"]  # fmt: skip
            lines.append(f"| {size} | {m} | " + " | ".join(cells) + " |")
        if "ganprint" in summary:
            for peer in [m for m in summary if m != "ganprint"]:
                g, p = summary["ganprint"], summary[peer]
                ratio = lambda k: "-" if not (g[k] and p[k]) else f"{g[k] / p[k]:.2f}x"  # noqa: E731
                lines.append(f"| {size} | ganprint / {peer} | | | | | |" + " |" * len(labels) +
                             f" {ratio('embed ms')} | {ratio('detect ms')} | {ratio('peak MB')} |")  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
