"""Decoder tuning: train a scalable network's decoder F alone, on its frozen generator.

    result = tune_decoder(ScalableNetwork.from_pretrained(run_dir), kimg=40)
    result.network.save_pretrained("tuned/")      # the same G, a better F

During training F learns from the generator of the current step at a learning rate set for keeping
up with a moving target, while snapshots, metrics and users generate with the generator's moving
average (EMA). A short run of F alone on the frozen snapshot generator, on images rounded to 8 bits
as PNGs store them, at a lower learning rate, closes that gap (cpu32 at 80 kimg: 0.933 -> 0.960 in
38 kimg, docs/scalable.md). G is not touched: every fingerprinted model exported from the network,
before or after, makes the same images, and the tuned F reads them.

Each step draws z, c and the noise maps from a generator seeded by `seed` (so a tuning run is
reproducible); with `augment` (an immunized network) F reads the images through the perturbations
as immunized training does once ramped in (the augmented accuracy is measured at full strength). Bit accuracy is measured before and after on the same
fresh codes as the trainer's metric (8-bit images, stored noise).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..augment import Augmenter
from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_config
from ..errors import GanprintError
from .network import ScalableNetwork, from_unit, quantize_unit, resolve_network_dir, to_unit
from .train import bit_accuracy


@dataclass
class DecoderTuning:
    network: ScalableNetwork  # G unchanged, F tuned
    steps: int  # optimizer steps taken
    bit_accuracy_before: float  # 8-bit images, fresh codes
    bit_accuracy_after: float
    augmented_before: float | None = None  # the same through the perturbations (with augment)
    augmented_after: float | None = None
    settings: dict | None = None  # kimg, lr, batch_size, seed, augment

    def record(self) -> dict:
        """What config.json keeps about the tuning."""
        return {**(self.settings or {}), "steps": self.steps, "bit_accuracy_uint8_before": self.bit_accuracy_before,
                "bit_accuracy_uint8_after": self.bit_accuracy_after}  # fmt: skip


def _accuracies(net: ScalableNetwork, images: int, augmenter: Augmenter | None) -> tuple[float, float | None]:
    plain = bit_accuracy(net.G, net.F, images)[1]
    augmented = bit_accuracy(net.G, net.F, images, augmenter=augmenter)[0] if augmenter is not None else None
    return plain, augmented


def tune_decoder(
    network: ScalableNetwork,  # a full network (G(z, c) and F); F is trained in place
    kimg: float = 40.0,  # thousands of generated images to train on
    lr: float = 1e-3,  # Adam learning rate of F (the cpu presets train it at 0.01)
    batch_size: int = 32,  # images per step
    seed: int = 0,  # seeds z, c and the noise maps of every step
    augment: str | None = None,  # perturbations before F, as in immunized training (an immunized network)
    eval_images: int = 1024,  # fresh images for the accuracy before and after
    progress: bool = True,  # a progress bar over the steps
) -> DecoderTuning:
    if network.F is None or network.is_fingerprinted:
        raise GanprintError("decoder tuning needs a full network (generator with a fingerprint input and decoder F), "
                            "not an exported fingerprinted model")  # fmt: skip
    if not (kimg > 0 and lr > 0 and batch_size >= 1 and eval_images >= 1):
        raise GanprintError(f"tune-decoder: kimg, lr, batch size and eval images must be positive, got "
                            f"{kimg}, {lr}, {batch_size}, {eval_images}")  # fmt: skip
    augmenter = Augmenter.from_spec(augment, ramp_steps=0) if augment else None
    G, F_, device = network.G.eval(), network.F, network.device
    G.requires_grad_(False)
    cfg = network.config
    F_.eval()
    before, augmented_before = _accuracies(network, eval_images, augmenter)
    steps = max(1, math.ceil(kimg * 1000 / batch_size))
    opt = torch.optim.Adam(F_.parameters(), lr, betas=(0.0, 0.99), eps=1e-8)  # the trainer's betas
    g = torch.Generator().manual_seed(seed)
    F_.train()
    for step in tqdm(range(steps), desc="tuning decoder", unit="step", disable=not progress):
        z = torch.randn(batch_size, cfg.z_dim, generator=g)
        c = torch.randint(0, 2, (batch_size, cfg.fingerprint_size), generator=g).float()
        noise = [torch.randn(batch_size, *shape, generator=g).to(device) for shape in G.noise_shapes()]
        with torch.no_grad():
            images = quantize_unit(to_unit(G(z.to(device), c.to(device), noise=noise)))  # as a PNG stores them
        if augmenter is not None:
            images = augmenter(images, step, g)
        loss = F.binary_cross_entropy_with_logits(F_(from_unit(images))[1], c.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    F_.eval()
    after, augmented_after = _accuracies(network, eval_images, augmenter)
    settings = {"kimg": kimg, "lr": lr, "batch_size": batch_size, "seed": seed, "augment": augment}
    return DecoderTuning(network, steps, before, after, augmented_before, augmented_after, settings)


def tune_to_folder(network_path: str | os.PathLike, output: str | os.PathLike, overwrite: bool = False,
                   device: str = "cpu", **options) -> DecoderTuning:  # fmt: skip
    """Load a network (name, model or run folder), tune its decoder and write the result to `output`
    (config.json keeps the source's training record and adds `decoder_tuning`)."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise GanprintError(f"{out}: exists and is not a folder")
    if not overwrite and any((out / name).exists() for name in (CONFIG_NAME, WEIGHTS_NAME)):
        raise GanprintError(f"{out} already holds a model; pass --overwrite to replace it")
    source = resolve_network_dir(network_path)
    network = ScalableNetwork.from_pretrained(source, device=device)
    kept = {k: v for k, v in read_config(source).items() if k not in network.config_dict()}
    tuning = tune_decoder(network, **options)
    network.save_pretrained(out, extra={**kept, "decoder_tuning": tuning.record()})
    return tuning
