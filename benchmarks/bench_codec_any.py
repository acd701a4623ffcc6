"""Every target of issue 20 for an any-size codec, measured on the held-out set (benchmarks/heldout_photos.py:
photographs and artwork from Debian packages the model never trained on) at the images' native sizes.

Default run (about 10 minutes on 2 free cores; the sample counts are printed):
- quality: PSNR (mean, worst) and SSIM (kornia, 11 px Gaussian window) of fingerprinted vs clean, and
  the clean round trip (embed -> 8-bit PNG file -> read back) bit accuracy, per size class: 256x256,
  ~1 MP (1152x864), 1080p (1920x1080), 4K (3840x2160). Class images are held-out sources scaled to
  cover the size (never up) and centre-cropped; sources too small for a class are passed over.
- unmarked images: >= 2,000 crops of many sizes (64 px to 2048 px sides, five aspect ratios, no
  resizing) cut from the held-out sources, each read against a random fingerprint: bit accuracy (0.5
  = chance) and false positives at FPR 1e-6 under the fair-coin binomial and, when the model has a
  calibration.json, the calibrated null; plus every crop against 1,000 random fingerprints.
- robustness: bit accuracy after each attack of issue 20 item 5 (ganprint.attacks.ANY_SIZE_ATTACKS),
  each image attacked at its own size, per size class, with pass/fail against the targets.

--speed (each figure in its own subprocess, repeats interleaved, medians printed): images/s of embed
and detect at 256x256, ms per 1920x1080 embed and detect (detect: unmarked images, which need the whole
crop search, and fingerprinted ones as published, read at the uncropped view), and peak memory
(maxrss) of embedding and detecting one and three 4K images against a baseline process that loads the
model and the images without running the model.

    python benchmarks/bench_codec_any.py                       # the shipped codec-any, held-out set
    python benchmarks/bench_codec_any.py --model runs/00000-codec-anysize-128w-100b/snapshot-000500
    python benchmarks/bench_codec_any.py --data photos/        # any folder instead of the held-out set
    python benchmarks/bench_codec_any.py --speed --repeats 5
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CLASSES = {"256px": (256, 256), "1MP": (1152, 864), "1080p": (1920, 1080), "4K": (3840, 2160)}  # (width, height)
COUNTS = {"256px": 40, "1MP": 16, "1080p": 10, "4K": 4}  # images per class in the default run
TARGETS = {  # bit accuracy targets of issue 20; attacks not listed are reported only
    "jpeg:75": 0.98, "jpeg:50": 0.95, "webp:80": 0.95, "rescale:0.5": 0.95, "crop_area:0.5": 0.95,
    "crop_area_random:0.5": 0.95, "contrast:0.7": 0.95, "contrast:1.3": 0.95, "saturation:0.7": 0.95,
    "saturation:1.3": 0.95, "brightness:0.7": 0.95, "brightness:1.3": 0.95, "screenshot:0.75": 0.95,
}  # fmt: skip
QUALITY_TARGETS = {"psnr_mean": 42.0, "psnr_worst": 38.0, "ssim_mean": 0.98, "round_trip": 0.999}
FPR = 1e-6


# ------------------------------------------------------------------------------------- images
def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image | None:
    """`image` scaled to cover `size` (never up) and centre-cropped to it; None if it is too small."""
    w, h = image.size
    tw, th = size
    scale = max(tw / w, th / h)
    if scale > 1:
        return None
    if scale < 1:
        image = image.resize((max(tw, round(w * scale)), max(th, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - tw) // 2, (h - th) // 2
    return image.crop((left, top, left + tw, top + th))


def _sources(args) -> list[tuple[str, int, int, object]]:
    """(name, width, height, make) of the distinct source images: held-out natives and derived images,
    or the images of --data."""
    if args.data:
        from ganprint.data import open_source

        source = open_source(args.data)
        out = []
        for i, name in enumerate(source.names):
            with Image.open(source.location(i)) as im:
                w, h = im.size
            out.append((name, w, h, lambda i=i: source.image(i)))
        return out
    from heldout_photos import plan, read_manifest

    items = read_manifest(args.heldout) if args.heldout else plan(0)
    return [(Path(it.file).stem, it.width, it.height, it.make) for it in items if it.kind in ("native", "derived")]


def class_images(sources, size: tuple[int, int], count: int) -> list[tuple[str, Image.Image]]:
    """`count` images of exactly `size`, from sources spread evenly over the list (large enough ones)."""
    fitting = [s for s in sources if s[1] >= size[0] and s[2] >= size[1]]
    if not fitting:
        return []
    picks = sorted({int(round(x)) for x in np.linspace(0, len(fitting) - 1, min(count, len(fitting)))})
    out = []
    for k in picks:
        name, _, _, make = fitting[k]
        image = _cover(make(), size)
        if image is not None:
            out.append((name, image))
    return out


def clean_crops(sources, count: int, seed: int = 0):
    """`count` crops of many sizes (64..2048 px sides, five aspect ratios), unresized, spread over sources."""
    rng = np.random.default_rng(seed)
    aspects = ((1, 1), (4, 3), (3, 4), (16, 9), (9, 16))
    per = [count // len(sources) + (k < count % len(sources)) for k in range(len(sources))]
    for (name, w, h, make), n in zip(sources, per):
        if n == 0 or min(w, h) < 64:
            continue
        image = make()
        for j in range(n):
            aw, ah = aspects[rng.integers(len(aspects))]
            long = math.exp(rng.uniform(math.log(64 * max(aw, ah) / min(aw, ah)), math.log(2048)))
            cw, ch = (long, long * ah / aw) if aw >= ah else (long * aw / ah, long)
            cw, ch = min(int(cw), w), min(int(ch), h)
            if min(cw, ch) < 64:
                cw, ch = max(cw, min(64, w)), max(ch, min(64, h))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            yield f"{name}#{j}", image.crop((x, y, x + cw, y + ch))


# ------------------------------------------------------------------------------------ quality run
def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


def _png_round_trip(marked: torch.Tensor) -> torch.Tensor:
    array = (marked.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    with Image.open(io.BytesIO(buffer.getvalue())) as back:
        return _to_tensor(back)


def quality_and_robustness(codec, sources, counts: dict[str, int], seed: int) -> dict:
    from ganprint.attacks import ANY_SIZE_ATTACKS, parse_attack_levels
    from ganprint.evaluation.quality import psnr, ssim
    from ganprint.evaluation.subjects import to_8bit

    levels = parse_attack_levels(ANY_SIZE_ATTACKS)
    length = codec.config.fingerprint_length
    g = torch.Generator().manual_seed(seed)
    out = {}
    for cls, size in CLASSES.items():
        images = class_images(sources, size, counts[cls])
        rows = {"psnr": [], "ssim": [], "round_trip": [], **{lv.label: [] for lv in levels}}
        t = time.time()
        for k, (name, image) in enumerate(images):
            clean = _to_tensor(image)
            bits = torch.randint(0, 2, (length,), generator=g).float()
            marked = to_8bit(codec.embed(clean, bits).cpu())
            rows["psnr"].append(psnr([marked], [clean]).item())
            rows["ssim"].append(ssim([marked], [clean]).item())
            read = (codec.decode_logits([_png_round_trip(marked)])[0] > 0).float()
            rows["round_trip"].append((read == bits).float().mean().item())
            for level in levels:
                attacked = to_8bit(level.apply(marked, seed=seed + k))
                if min(attacked.shape[-2:]) < codec.config.min_side:
                    continue  # below what the codec reads (reported as fewer images)
                read = (codec.decode_logits([attacked])[0] > 0).float()
                rows[level.label].append((read == bits).float().mean().item())
        out[cls] = {"images": len(images), "seconds": round(time.time() - t, 1), **rows}
        print(f"  {cls}: {len(images)} images in {out[cls]['seconds']} s", file=sys.stderr, flush=True)
    return out


def unmarked(codec, decoder, sources, count: int, fingerprints: int, seed: int) -> dict:
    from ganprint.attribution import hamming, pack_bits
    from ganprint.calibration import load_calibration
    from ganprint.detection import NullModel

    length = codec.config.fingerprint_length
    logits, sizes = [], []
    t = time.time()
    for name, crop in clean_crops(sources, count, seed):
        logits.append(codec.decode_logits([_to_tensor(crop)]))
        sizes.append(crop.size)
    bits = (torch.cat(logits) > 0).numpy().astype(np.uint8)
    n = len(bits)
    rng = np.random.default_rng(seed + 1)
    own = rng.integers(0, 2, size=(n, length), dtype=np.uint8)  # one random fingerprint per image
    tests = rng.integers(0, 2, size=(fingerprints, length), dtype=np.uint8)
    nulls = {"binomial": NullModel.fair(length)}
    calibration = load_calibration(decoder)
    if calibration is not None:
        nulls["calibrated"] = calibration.null_model()
    own_matches = (bits == own).sum(1)
    all_matches = length - hamming(pack_bits(bits), pack_bits(tests))
    result = {"images": n, "length": length, "seconds": round(time.time() - t, 1), "bit_accuracy": float(own_matches.mean() / length),
              "bit_accuracy_max": float(own_matches.max() / length), "comparisons": int(all_matches.size),
              "sides": (min(min(s) for s in sizes), max(max(s) for s in sizes)), "nulls": {}}  # fmt: skip
    for kind, null in nulls.items():
        k = null.threshold(FPR)
        result["nulls"][kind] = {"threshold": int(k), "false_positives": int((own_matches >= k).sum()),
                                 "over_comparisons": int((all_matches >= k).sum())}  # fmt: skip
    return result


def _mean(values) -> float:
    return sum(values) / len(values) if values else float("nan")


def report(model: str, runs: dict, clean: dict) -> None:
    classes = [c for c in CLASSES if runs[c]["images"]]
    all_rows = lambda key: [v for c in classes for v in runs[c][key]]  # noqa: E731
    print(f"\nany-size codec {model}: held-out images at native size; FPR {FPR:g}")
    print("images per class: " + ", ".join(f"{c} {runs[c]['images']} ({runs[c]['seconds']} s)" for c in CLASSES))
    head = f"{'':<24}" + "".join(f"{c:>9}" for c in classes) + f"{'all':>9}{'target':>9}  verdict"
    print("\nquality (fingerprinted vs clean, native size)\n" + head)
    checks = [("PSNR mean (dB)", "psnr", _mean, "psnr_mean", ">="), ("PSNR worst (dB)", "psnr", min, "psnr_worst", ">="),
              ("SSIM mean", "ssim", _mean, "ssim_mean", ">="), ("PNG round trip bit acc.", "round_trip", _mean,
              "round_trip", ">=")]  # fmt: skip
    for label, key, agg, target_key, _ in checks:
        values = [agg(runs[c][key]) for c in classes]
        total, target = agg(all_rows(key)), QUALITY_TARGETS[target_key]
        digits = 2 if key == "psnr" else 4
        print(f"{label:<24}" + "".join(f"{v:>9.{digits}f}" for v in values) + f"{total:>9.{digits}f}{target:>9g}  "
              + ("pass" if total >= target else "FAIL"))
    print(f"\nunmarked images: {clean['images']} crops, sides {clean['sides'][0]}-{clean['sides'][1]} px "
          f"({clean['seconds']} s)")
    print(f"  bit accuracy against a random fingerprint each: mean {clean['bit_accuracy']:.4f} (chance 0.5), "
          f"max {clean['bit_accuracy_max']:.3f}")
    for kind, r in clean["nulls"].items():
        print(f"  {kind:<10} threshold {r['threshold']}/{clean['length']} bits: false positives {r['false_positives']} of {clean['images']} images "
              + ("pass" if r["false_positives"] == 0 else "FAIL")
              + f"; {r['over_comparisons']} of {clean['comparisons']} comparisons with random fingerprints")
    if "calibrated" not in clean["nulls"]:
        print("  calibrated: the model has no calibration.json (run `ganprint calibrate`)")
    from ganprint.attacks import ANY_SIZE_ATTACKS, parse_attack_levels

    print("\nbit accuracy after each attack, at native size (mean over images; n = images read)\n" + head)
    for level in parse_attack_levels(ANY_SIZE_ATTACKS):
        label = level.label
        values = [_mean(runs[c][label]) for c in classes]
        total = _mean(all_rows(label))
        target = TARGETS.get(label)
        verdict = "report" if target is None else ("pass" if all(v >= target for v in values) else "FAIL")
        missing = [f"{c} n={len(runs[c][label])}" for c in classes if len(runs[c][label]) != runs[c]["images"]]
        print(f"{label:<24}" + "".join(f"{v:>9.4f}" for v in values) + f"{total:>9.4f}"
              + f"{'' if target is None else format(target, 'g'):>9}  {verdict}" + (f" ({', '.join(missing)})" if missing else ""))
    print("verdict: pass = the mean of every size class meets the target")


# --------------------------------------------------------------------------------------- speed
TASKS = ("baseline-4k", "memory-4k-x1", "memory-4k-x3", "embed-256", "detect-256", "detect-256-marked", "embed-1080p",
         "detect-1080p", "detect-1080p-marked")


def child(task: str, model: str, repeat: int) -> dict:
    """One measurement in a fresh process."""
    from ganprint.codec.importing import load_codec

    torch.manual_seed(repeat)
    codec = load_codec(model, device="cpu")
    bits = torch.randint(0, 2, (codec.config.fingerprint_length,)).float()
    if task.startswith(("baseline", "memory")):
        count = 3 if task.endswith("x3") else 1
        images = [torch.rand(3, 2160, 3840) for _ in range(count)]
        if task.startswith("memory"):
            for image in images:
                marked = codec.embed(image, bits)
                codec.decode_logits([marked])
                del marked
        return {"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    side = (256, 256) if "256" in task else (1080, 1920)
    count = 60 if side[0] == 256 else 8
    images = [torch.rand(3, *side) for _ in range(count)]
    marked = [codec.embed(x, bits) for x in images[:2]]  # warm-up
    codec.decode_logits(marked[:1])
    if task.endswith("marked"):  # a fingerprinted photo as published: the search ends at the uncropped reading
        from ganprint.demo import demo_photos  # photos, not noise: a 256 px noise image hides any fingerprint

        def covering(im: Image.Image) -> Image.Image:  # scaled up first if it is smaller than the size
            up = max(side[1] / im.size[0], side[0] / im.size[1], 1)
            return _cover(im.resize((math.ceil(im.size[0] * up), math.ceil(im.size[1] * up))), side[::-1])

        photos = [_to_tensor(covering(im)) for _, im in demo_photos()]
        images = [(codec.embed(photos[k % len(photos)], bits) * 255).round() / 255 for k in range(count)]
    t = time.perf_counter()
    for x in images:
        if task.startswith("embed"):
            codec.embed(x, bits)
        else:
            codec.decode_logits([x])
    seconds = (time.perf_counter() - t) / count
    return {"ms": 1000 * seconds, "per_s": 1 / seconds}


def speed(model: str, repeats: int) -> None:
    results: dict[str, list[dict]] = {t: [] for t in TASKS}
    for r in range(repeats):  # interleaved: every task once per round
        for task in TASKS:
            out = subprocess.run([sys.executable, __file__, "--child", task, "--model", model, "--seed", str(r)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            results[task].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = lambda task, key: statistics.median(x[key] for x in results[task])  # noqa: E731
    print(f"\nspeed of {model} ({torch.get_num_threads()} threads; medians of {repeats} interleaved repeats, "
          "each in its own process)")
    rows = [("embed 256x256", med("embed-256", "per_s"), "images/s", 25, ">="),
            ("detect 256x256", med("detect-256", "per_s"), "images/s", 25, ">="),
            ("  fingerprinted", med("detect-256-marked", "per_s"), "images/s", 25, ">="),
            ("embed 1920x1080", med("embed-1080p", "ms"), "ms", 150, "<="),
            ("detect 1920x1080", med("detect-1080p", "ms"), "ms", 100, "<="),
            ("  fingerprinted", med("detect-1080p-marked", "ms"), "ms", 100, "<=")]  # fmt: skip
    for label, value, unit, target, op in rows:
        ok = value >= target if op == ">=" else value <= target
        ratio = value / target if op == ">=" else target / value
        print(f"  {label:<18} {value:8.1f} {unit:<9} target {op} {target:<4} {ratio:5.2f}x  {'pass' if ok else 'FAIL'}")
    base, one, three = med("baseline-4k", "maxrss_mb"), med("memory-4k-x1", "maxrss_mb"), med("memory-4k-x3", "maxrss_mb")
    print(f"  peak memory, one 4K image embedded and read: {one:.0f} MB (baseline {base:.0f} MB: model and image "
          f"loaded, not run; +{one - base:.0f} MB) target <= 1536 MB  {'pass' if one <= 1536 else 'FAIL'}")
    print(f"  three 4K images one after another: {three:.0f} MB ({three - one:+.0f} MB over one, of which "
          f"{2 * 3 * 2160 * 3840 * 4 / 2**20:.0f} MB are the two extra input images)")


# ---------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", default="codec-any", help="shipped name or model folder (default codec-any)")
    parser.add_argument("--heldout", default=None, help="a built held-out set (heldout_photos.py --output); "
                        "default: made in memory from the Debian packages")
    parser.add_argument("--data", default=None, help="a folder of images instead of the held-out set")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the per-class image counts")
    parser.add_argument("--clean", type=int, default=2000, help="unmarked crops (default 2000)")
    parser.add_argument("--fingerprints", type=int, default=1000, help="random fingerprints each crop is compared with")
    parser.add_argument("--speed", action="store_true", help="measure speed and memory instead")
    parser.add_argument("--repeats", type=int, default=3, help="--speed: interleaved repeats (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.seed)))
        return
    if args.speed:
        speed(args.model, args.repeats)
        return
    from ganprint.codec.importing import load_codec
    from ganprint.decoders import describe_codec

    codec = load_codec(args.model, device="cpu")
    if not getattr(codec, "any_size", False):
        raise SystemExit(f"error: {args.model} is not an any-size codec")
    decoder = describe_codec(args.model, codec)
    try:
        sources = _sources(args)
    except Exception as exc:  # the held-out packages missing: say how to get them
        raise SystemExit(f"error: {exc}") from None
    counts = {c: max(1, round(n * args.scale)) for c, n in COUNTS.items()}
    print(f"{len(sources)} source images; per class at most: " + ", ".join(f"{c} {n}" for c, n in counts.items())
          + f"; {args.clean} unmarked crops", file=sys.stderr, flush=True)  # fmt: skip
    runs = quality_and_robustness(codec, sources, counts, args.seed)
    clean = unmarked(codec, decoder, sources, args.clean, args.fingerprints, args.seed)
    report(args.model, runs, clean)


if __name__ == "__main__":
    main()
