"""The demo, both methods end to end through PNG files.

Any-size codec: built-in photos (512 px and up) fingerprinted at their native size -> PNG -> read
back -> detect; then the same files re-saved as JPEG 75, halved, and cropped to half their area.
Codec (ICCV 2021): embed -> PNG files -> read back -> detect, with clean images as controls.
Scalable fingerprinting (ICLR 2022): three fingerprinted models of one scalable network generate
images -> PNG files -> read back -> the network's decoder reads each image's fingerprint -> each
image is attributed to the nearest of the three fingerprints (ganprint.attribution).
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .attribution import ATTRIBUTED, NOT_FINGERPRINTED, UNKNOWN, Attributor, summarize
from .calibration import load_calibration
from .codec.importing import load_codec
from .data import load_image, open_source, pil_to_tensor, preprocess, tensor_to_pil
from .detection import DetectionResult
from .errors import GanprintError
from .fingerprints import bits_to_hex, random_fingerprints
from .pretrained import ANYSIZE_CODEC, CODEC_32
from .visualize import flattest_and_busiest_windows, labelled_image_rows, residual_grid, save_png

DEMO_PHOTOS = ("astronaut.png", "coffee.png")  # assets/demo_photos: never seen by codec-any in training
ANYSIZE_PICTURE = "anysize-demo.png"
DEFAULT_SCALABLE_NETWORK = "scalable-32"  # the shipped scalable network (also `ganprint scalable`'s default)
SCALABLE_MODELS = ("A", "B", "C")  # the fingerprinted models the scalable part makes
SCALABLE_IMAGES_DIR = "scalable_images"
SCALABLE_PICTURE = "scalable-demo.png"


def run_demo(
    output_dir: str | os.PathLike,
    model: str | None = None,
    count: int = 16,
    seed: int = 0,
    device: str = "auto",
    echo: Callable[[str], None] = print,
    scalable_network: str | os.PathLike | None = DEFAULT_SCALABLE_NETWORK,
    images_per_model: int = 8,
    anysize_model: str | os.PathLike | None = ANYSIZE_CODEC,
) -> dict:
    """Run the demo and return its figures (used by the tests): first the any-size codec
    `anysize_model` on the built-in photos (`figures["anysize"]`, see `run_anysize_demo`), then the
    32-px codec `model` (default codec-32) on `count` sample crops, then the scalable part
    (`figures["scalable"]`, see `run_scalable_demo`). `anysize_model` or `scalable_network` None
    leaves that part out."""
    out = Path(output_dir)
    figures: dict = {}
    if anysize_model is not None:
        figures["anysize"] = run_anysize_demo(out, anysize_model, seed=seed, device=device, echo=echo)
        echo("")
    images_dir = out / "fingerprinted_images"
    model = CODEC_32 if model is None else model
    codec = load_codec(model, device=device)
    r, length = codec.config.resolution, codec.config.fingerprint_length
    source = open_source("samples")
    count = min(count, len(source))

    clean = torch.stack([pil_to_tensor(preprocess(source.image(i), r)) for i in range(count)])
    fingerprint = torch.randint(0, 2, (length,), generator=torch.Generator().manual_seed(seed)).float()
    echo(f"codec {model}: {codec.config.arch} arch, {r}x{r}, {length} bits (crops of the built-in photos, as in "
         "a GAN's training set)")
    echo(f"fingerprint: {bits_to_hex(fingerprint)}")

    marked = codec.embed(clean, fingerprint).cpu()
    paths = [images_dir / f"{source.names[i].rsplit('.', 1)[0]}.png" for i in range(count)]
    reloaded = save_and_reload(marked, paths)
    on_marked = codec.detect(reloaded, expected=fingerprint)
    on_clean = codec.detect(clean, expected=fingerprint)

    psnr = [10 * math.log10(1 / max(1e-12, (m - c).pow(2).mean().item())) for m, c in zip(reloaded, clean)]
    echo(f"\n{'image':<18}{'bit acc':>9}{'PSNR dB':>9}{'-log10 p':>10}  verdict      | clean control")
    for i in range(count):
        echo(
            f"{paths[i].name:<18}{on_marked.bit_accuracy[i]:>9.3f}{psnr[i]:>9.1f}{on_marked.neg_log10_p[i]:>10.1f}  "
            f"{_verdict(on_marked, i):<12} | {on_clean.bit_accuracy[i]:.3f} {_verdict(on_clean, i)}"
        )
    figures |= {
        "bit_accuracy": on_marked.bit_accuracy.mean().item(),
        "psnr": sum(psnr) / len(psnr),
        "detected": sum(on_marked.detected),
        "clean_bit_accuracy": on_clean.bit_accuracy.mean().item(),
        "clean_detected": sum(on_clean.detected),
        "images": count,
    }
    picture = out / "demo.png"
    save_png(residual_grid(clean[:8], reloaded[:8], max_images=8), picture)
    echo(
        f"\nfingerprinted: mean bit accuracy {figures['bit_accuracy']:.4f}, PSNR {figures['psnr']:.1f} dB, "
        f"detected {figures['detected']}/{count} at FPR {on_marked.false_positive_rate:g}"
    )
    echo(
        f"clean:         mean bit accuracy {figures['clean_bit_accuracy']:.4f}, "
        f"detected {figures['clean_detected']}/{count}"
    )
    echo(f"picture (clean / fingerprinted / amplified residual): {picture}")
    if scalable_network is not None:
        echo("")
        figures["scalable"] = run_scalable_demo(out, scalable_network, seed=seed, device=device, echo=echo,
                                                images_per_model=images_per_model)  # fmt: skip
    return figures


def _verdict(result: DetectionResult, i: int) -> str:
    if not result.enough_signal[i]:
        return "no signal"  # too flat to decide (ganprint.texture)
    return "FINGERPRINTED" if result.detected[i] else "not detected"


def save_and_reload(images: torch.Tensor, paths: Sequence[Path]) -> torch.Tensor:
    """Save images (N, 3, R, R) as PNG files and read them back: detection must work on what was
    saved (8-bit, as anyone receiving the files sees it), not on float tensors."""
    for image, path in zip(images, paths):
        save_png(tensor_to_pil(image), path)
    return torch.stack([pil_to_tensor(load_image(p)) for p in paths])


# ------------------------------------------------------------------------------- scalable part
def run_scalable_demo(
    output_dir: str | os.PathLike,
    network: str | os.PathLike = DEFAULT_SCALABLE_NETWORK,
    seed: int = 0,
    device: str = "auto",
    echo: Callable[[str], None] = print,
    images_per_model: int = 8,
) -> dict:
    """Three fingerprinted models of a scalable network (fingerprints drawn from `seed`, at least a
    quarter of the bits apart, as `registry issue` keeps them) each generate `images_per_model`
    images; the PNGs are read back, decoded and attributed. When the network cannot be used (not
    shipped in this build, not found, no decoder) prints one line saying why and returns
    {"skipped": reason}."""
    out = Path(output_dir)
    generator = _scalable_generator(seed)  # draws the fingerprints, then each model's latents z
    try:
        net, decoder = _load_scalable(network, device)
        fingerprints = _distinct_fingerprints(len(SCALABLE_MODELS), net.config.fingerprint_size, generator)
    except GanprintError as exc:
        reason = str(exc)
        echo(f"scalable fingerprinting: skipped ({reason})")
        return {"skipped": reason}
    cfg, count = net.config, len(SCALABLE_MODELS)
    echo(f"scalable network {network}: {cfg.resolution}x{cfg.resolution}, {cfg.fingerprint_size}-bit fingerprints; "
         f"{count} fingerprinted models, {images_per_model} images each")  # fmt: skip
    for label, fingerprint in zip(SCALABLE_MODELS, fingerprints):
        echo(f"model {label}: {bits_to_hex(fingerprint)}")

    generated, paths, sources = [], [], []
    for label, fingerprint in zip(SCALABLE_MODELS, fingerprints):
        z = torch.randn(images_per_model, cfg.z_dim, generator=generator)
        generated.append(net.generate(z, fingerprint.expand(images_per_model, -1)).cpu())
        paths += [out / SCALABLE_IMAGES_DIR / f"model-{label}" / f"image-{j:02d}.png" for j in range(images_per_model)]
        sources += [label] * images_per_model
    reloaded = save_and_reload(torch.cat(generated), paths)

    logits = decoder.decode_logits(reloaded).detach().float().cpu()
    calibration = load_calibration(decoder)
    null = calibration.null_model() if calibration else None
    own = fingerprints.repeat_interleave(images_per_model, dim=0)
    detection = DetectionResult.from_logits(logits, own, null=null, images=reloaded)
    accuracy = (detection.bits[:, None, :] == fingerprints[None]).float().mean(dim=-1)  # (images, models)
    names = [f"{p.parent.name}/{p.name}" for p in paths]
    attributor = Attributor(SCALABLE_MODELS, fingerprints, null=null,
                            confidence_threshold=calibration.confidence_threshold if calibration else None)  # fmt: skip
    results = attributor.attribute_logits(logits, names, images=reloaded)

    rows = []
    echo(f"\n{'image':<22}{'model':>6}{'attributed':>12}{'bit acc':>9}{'best other':>12}{'-log10 p':>10}  verdict")
    for i, (name, source, result) in enumerate(zip(names, sources, results)):
        others = [accuracy[i, k].item() for k, label in enumerate(SCALABLE_MODELS) if label != source]
        rows.append({
            "image": name, "model": source, "attributed_to": result.model, "verdict": result.verdict,
            "bit_accuracy": detection.bit_accuracy[i].item(), "best_other_bit_accuracy": max(others),
            "neg_log10_p": result.neg_log10_corrected_p, "p_value": result.corrected_p_value,
        })  # fmt: skip
        echo(f"{name:<22}{source:>6}{result.model or '-':>12}{rows[-1]['bit_accuracy']:>9.3f}{max(others):>12.3f}"
             f"{result.neg_log10_corrected_p:>10.1f}  {result.verdict}")  # fmt: skip

    correct = sum(r["attributed_to"] == r["model"] for r in rows)
    wrong = sum(r["attributed_to"] not in (None, r["model"]) for r in rows)
    verdicts = summarize(results)
    figures = {
        "skipped": None,
        "network": str(network),
        "fingerprints": {label: bits_to_hex(fp) for label, fp in zip(SCALABLE_MODELS, fingerprints)},
        "images": len(rows),
        "attributed_correctly": correct,
        "misattributed": wrong,
        "attribution_accuracy": correct / len(rows),
        "verdicts": verdicts,
        "bit_accuracy": detection.bit_accuracy.mean().item(),
        "best_other_bit_accuracy": sum(r["best_other_bit_accuracy"] for r in rows) / len(rows),
        "decision_radius": attributor.decision_radius,
        "false_positive_rate": attributor.false_positive_rate,
        "per_image": rows,
    }
    picture = out / SCALABLE_PICTURE
    save_png(_scalable_picture(reloaded, rows, fingerprints, images_per_model), picture)
    figures["picture"] = str(picture)
    echo(
        f"\nattribution: {correct}/{len(rows)} images attributed to the model that made them "
        f"(attribution accuracy {figures['attribution_accuracy']:.3f}), {wrong} to another model, "
        f"{verdicts[UNKNOWN]} {UNKNOWN}, {verdicts[NOT_FINGERPRINTED]} {NOT_FINGERPRINTED}"
    )
    echo(
        f"  p: of the nearest fingerprint, {attributor.null.description}, times {count} (Bonferroni); "
        f"attributed when at most {attributor.false_positive_rate:g}"
    )
    echo(
        f"bit accuracy: {figures['bit_accuracy']:.4f} against the image's own fingerprint, "
        f"{figures['best_other_bit_accuracy']:.4f} against the best of the other two (mean)"
    )
    echo(f"picture (one row per model; bit accuracy and attributed model per image): {picture}")
    return figures


def _scalable_generator(seed: int) -> torch.Generator:
    """The scalable part's random stream: independent of the codec part's, which `seed` seeds directly."""
    mixed = np.random.SeedSequence([seed % 2**64, 2022]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))


def _load_scalable(network: str | os.PathLike, device: str):
    """(ScalableNetwork, its Decoder); GanprintError when the network cannot be used."""
    from .decoders import scalable_decoder
    from .device import resolve_device
    from .pretrained import shipped_models

    name = os.fspath(network)
    if name == DEFAULT_SCALABLE_NETWORK and not Path(name).is_dir() and name not in shipped_models():
        raise GanprintError(f"the shipped network {name} is not part of this ganprint build; "
                            "give a network with --scalable-network")  # fmt: skip
    decoder = scalable_decoder(name, device)  # refuses an exported model: it has no decoder
    from .scalable.network import ScalableNetwork

    return ScalableNetwork.from_pretrained(name, resolve_device(device)), decoder


def _distinct_fingerprints(count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random fingerprints, refused unless pairwise at least `default_min_distance(length)`
    bits apart (the registry's rule; for 128 bits a failure has odds of about 1e-9)."""
    from .registry import default_min_distance

    min_distance = default_min_distance(length)
    drawn = random_fingerprints(count, length, generator)
    if all((drawn[i] != drawn[j]).sum() >= min_distance for i in range(count) for j in range(i)):
        return drawn
    raise GanprintError(f"the {count} random {length}-bit fingerprints of this seed are closer than {min_distance} "
                        "bits to each other; choose another --seed")  # fmt: skip


def _scalable_picture(images: torch.Tensor, rows: list[dict], fingerprints: torch.Tensor, per_model: int):
    """One row per model: its images, each captioned with its bit accuracy and the attributed model
    (green: its own model, red: another model, grey: not attributed)."""
    groups, row_labels, captions, colors = [], [], [], []
    for k, (label, fingerprint) in enumerate(zip(SCALABLE_MODELS, fingerprints)):
        part = rows[k * per_model : (k + 1) * per_model]
        groups.append(images[k * per_model : (k + 1) * per_model])
        row_labels.append(f"model {label}\n{bits_to_hex(fingerprint)[:8]}…")
        captions.append([f"{r['bit_accuracy']:.2f} → {r['attributed_to'] or '-'}" for r in part])
        colors.append([
            "grey" if r["verdict"] != ATTRIBUTED else "green" if r["attributed_to"] == r["model"] else "red"
            for r in part
        ])  # fmt: skip
    return labelled_image_rows(groups, row_labels, captions, colors,
                               title="scalable fingerprinting: bit accuracy vs own fingerprint → attributed model "
                               "(green: its own, red: another, grey: none)")  # fmt: skip


# ------------------------------------------------------------------------------- any-size part
def demo_photos() -> list[tuple[str, Image.Image]]:
    """The built-in photos of the any-size part, at their native size."""
    root = resources.files("ganprint") / "assets" / "demo_photos"
    return [(name, load_image(bytes((root / name).read_bytes()), name)) for name in DEMO_PHOTOS]


def _wild_copies(image: Image.Image) -> dict[str, Image.Image]:
    """What a published photo meets on the way: re-saved as JPEG 75, halved, cropped to half its area
    (ganprint.attacks), each saved to 8 bits as a file would hold it."""
    from .attacks import ATTACKS

    x = pil_to_tensor(image).unsqueeze(0)
    return {label: tensor_to_pil(ATTACKS[name](x, value)[0]) for label, name, value in WILD_ATTACKS}


WILD_ATTACKS = (("JPEG 75", "jpeg", 75), ("resize 0.5", "rescale", 0.5), ("crop 50%", "crop_area", 0.5))


def _hundred_percent_crops(clean: torch.Tensor, marked: torch.Tensor, side: int = 160):
    """The flattest and the most textured side x side windows of an image, at 100% (no scaling)."""
    boxes = flattest_and_busiest_windows(clean, side)
    cut = lambda t: torch.stack([t[:, y : y + side, x : x + side] for y, x in boxes])  # noqa: E731
    return cut(clean), cut(marked)


def run_anysize_demo(output_dir: str | os.PathLike, model: str | os.PathLike = ANYSIZE_CODEC, seed: int = 0, device: str = "auto",
                     echo: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Fingerprint the built-in photos at native size, save as PNG, read back, detect; then detect on
    copies re-saved as JPEG 75, halved and cropped; the clean photos are the controls. When the codec
    cannot be used (not shipped in this build, not found, not an any-size codec) prints one line saying
    why and returns {"skipped": reason}."""
    out = Path(output_dir)
    try:
        codec = load_codec(model, device=device)
        if not getattr(codec, "any_size", False):
            raise GanprintError(f"{model}: not an any-size codec (e.g. codec-any)")
    except GanprintError as exc:
        echo(f"photos at native size: skipped ({exc})")
        return {"skipped": str(exc)}
    length = codec.config.fingerprint_length
    fingerprint = torch.randint(0, 2, (length,), generator=torch.Generator().manual_seed(seed)).float()
    echo(f"codec {model}: any size, {length} bits (working resolution {codec.config.working_resolution})")
    echo(f"fingerprint: {bits_to_hex(fingerprint)}\n")
    header = f"{'image':<16}{'size':>10}{'PSNR dB':>9}{'bit acc':>9}{'-log10 p':>10}  verdict"
    echo(header + "".join(f" | {label:>10}" for label, *_ in WILD_ATTACKS) + " | clean control")
    rows, crops_clean, crops_marked = [], [], []
    for name, photo in demo_photos():
        marked = codec.embed(photo, fingerprint)
        path = out / "anysize_images" / name
        save_png(marked, path)
        reloaded = load_image(path)
        clean_t, marked_t = pil_to_tensor(photo), pil_to_tensor(reloaded)
        psnr = 10 * math.log10(1 / max(1e-12, (marked_t - clean_t).pow(2).mean().item()))
        result = codec.detect(reloaded, expected=fingerprint)
        wild = {label: codec.detect(img, expected=fingerprint) for label, img in _wild_copies(reloaded).items()}
        control = codec.detect(photo, expected=fingerprint)
        echo(
            f"{name:<16}{f'{photo.width}x{photo.height}':>10}{psnr:>9.1f}{result.bit_accuracy[0]:>9.3f}"
            f"{result.neg_log10_p[0]:>10.1f}  {_verdict(result, 0):<13}"
            + "".join(f" | {r.bit_accuracy[0]:.3f} {'det' if r.detected[0] else 'MISS'}" for r in wild.values())
            + f" | {control.bit_accuracy[0]:.3f} {_verdict(control, 0)}"
        )
        rows.append({"name": name, "psnr": psnr, "bit_accuracy": result.bit_accuracy[0].item(),
                     "detected": bool(result.detected[0]), "clean_detected": bool(control.detected[0]),
                     **{f"{label} bit_accuracy": r.bit_accuracy[0].item() for label, r in wild.items()},
                     **{f"{label} detected": bool(r.detected[0]) for label, r in wild.items()}})  # fmt: skip
        c, m = _hundred_percent_crops(clean_t, marked_t)
        crops_clean.append(c)
        crops_marked.append(m)
    picture = out / ANYSIZE_PICTURE
    save_png(residual_grid(torch.cat(crops_clean), torch.cat(crops_marked)), picture)
    echo(f"\n{len(rows)} photos at native size: detected {sum(r['detected'] for r in rows)}/{len(rows)} from PNG, "
         + ", ".join(f"{sum(r[f'{label} detected'] for r in rows)}/{len(rows)} after {label}" for label, *_ in WILD_ATTACKS)
         + f"; clean controls detected {sum(r['clean_detected'] for r in rows)}/{len(rows)}")  # fmt: skip
    echo(f"picture (100% crops, flattest and busiest region of each photo: clean / fingerprinted / amplified "
         f"residual): {picture}")
    return {"photos": rows}
