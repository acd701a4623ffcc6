"""Generating images with an unconditional GAN, one PNG per seed, with a record of the seeds.

For seed s, `torch.Generator().manual_seed(s)` draws z (z_dim values N(0, 1)), then, only with
noise_mode "random", the noise maps layer by layer (shapes `G.noise_shapes()`). With the default
noise_mode "const" the generator's stored noise maps are used, so an image depends only on its seed.

Files written into the output folder:
    seed0000.png ...          the images (8-bit RGB PNG)
    generated_images.csv      name, seed
    generation.json           the network, its kind and the options
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..data import tensor_to_pil
from ..errors import GanprintError
from ..io import atomic_write_json, atomic_write_text
from ..visualize import save_png
from .network import GanNetwork

RECORD_CSV = "generated_images.csv"
GENERATION_JSON = "generation.json"


def draw(network: GanNetwork, seed: int, noise_mode: str = "const") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(z (z_dim,), noise maps or []) of one seed, in the documented order."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(network.config.z_dim, generator=g)
    noise = [torch.randn(*shape, generator=g) for shape in network.G.noise_shapes()] if noise_mode == "random" else []
    return z, noise


@dataclass
class GenerationSummary:
    images: int
    output_dir: Path


def generate_images(network: GanNetwork, seeds: list[int], output_dir: str | os.PathLike, noise_mode: str = "const",
                    batch_size: int = 64, overwrite: bool = False, progress: bool = True,
                    network_name: str = "") -> GenerationSummary:  # fmt: skip
    """Write one PNG per seed plus the records (see the module docstring)."""
    if not seeds:
        raise GanprintError("no seeds given")
    if noise_mode not in ("const", "random", "none"):
        raise GanprintError(f"noise mode must be const, random or none, got {noise_mode!r}")
    out = Path(output_dir)
    names = [f"seed{s:04d}.png" for s in seeds]
    if not overwrite:
        for name in (RECORD_CSV, GENERATION_JSON, *names):
            if (out / name).exists():
                raise GanprintError(f"{out / name} already exists; choose another output folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)

    bar = tqdm(total=len(seeds), desc="generate", unit="img", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(seeds), batch_size):
        drawn = [draw(network, s, noise_mode) for s in seeds[start : start + batch_size]]
        z = torch.stack([d[0] for d in drawn])
        noise = [torch.stack(maps) for maps in zip(*(d[1] for d in drawn))] if noise_mode == "random" else None
        images = network.generate(z, noise_mode=noise_mode, noise=noise).cpu()
        for name, image in zip(names[start:], images):
            save_png(tensor_to_pil(image), out / name)
        bar.update(len(drawn))
    bar.close()

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "seed"])
    writer.writerows(zip(names, seeds))
    atomic_write_text(out / RECORD_CSV, buffer.getvalue())
    atomic_write_json(out / GENERATION_JSON, {
        "network": network_name, "network_kind": network.config.to_dict()["kind"], "seeds": len(seeds),
        "first_seed": seeds[0], "noise_mode": noise_mode,
    })  # fmt: skip
    return GenerationSummary(len(seeds), out)
