"""The demo: embed -> PNG files -> read back -> detect, with clean images as controls."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import torch

from .codec.importing import load_codec
from .data import load_image, open_source, pil_to_tensor, preprocess, tensor_to_pil
from .detection import DetectionResult
from .fingerprints import bits_to_hex
from .visualize import residual_grid, save_png


def run_demo(
    output_dir: str | os.PathLike,
    model: str | None = None,
    count: int = 16,
    seed: int = 0,
    device: str = "auto",
    echo: Callable[[str], None] = print,
) -> dict:
    """Run the demo and return its figures (used by the tests)."""
    out = Path(output_dir)
    images_dir = out / "fingerprinted_images"
    codec = load_codec(model, device=device)
    r, length = codec.config.resolution, codec.config.fingerprint_length
    source = open_source("samples")
    count = min(count, len(source))

    clean = torch.stack([pil_to_tensor(preprocess(source.image(i), r)) for i in range(count)])
    fingerprint = torch.randint(0, 2, (length,), generator=torch.Generator().manual_seed(seed)).float()
    echo(f"codec {model or 'codec-32'}: {codec.config.arch} arch, {r}x{r}, {length} bits")
    echo(f"fingerprint: {bits_to_hex(fingerprint)}")

    marked = codec.embed(clean, fingerprint).cpu()
    paths = []
    for i, image in enumerate(marked):
        path = images_dir / f"{source.names[i].rsplit('.', 1)[0]}.png"
        save_png(tensor_to_pil(image), path)
        paths.append(path)
    # Read the PNG files back: detection must work on what was saved, not on float tensors.
    reloaded = torch.stack([pil_to_tensor(load_image(p)) for p in paths])
    on_marked = codec.detect(reloaded, expected=fingerprint)
    on_clean = codec.detect(clean, expected=fingerprint)

    psnr = [10 * math.log10(1 / max(1e-12, (m - c).pow(2).mean().item())) for m, c in zip(reloaded, clean)]
    echo(f"\n{'image':<18}{'bit acc':>9}{'PSNR dB':>9}{'-log10 p':>10}  verdict      | clean control")
    for i in range(count):
        echo(
            f"{paths[i].name:<18}{on_marked.bit_accuracy[i]:>9.3f}{psnr[i]:>9.1f}{on_marked.neg_log10_p[i]:>10.1f}  "
            f"{_verdict(on_marked, i):<12} | {on_clean.bit_accuracy[i]:.3f} {_verdict(on_clean, i)}"
        )
    figures = {
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
    return figures


def _verdict(result: DetectionResult, i: int) -> str:
    return "FINGERPRINTED" if result.detected[i] else "not detected"
