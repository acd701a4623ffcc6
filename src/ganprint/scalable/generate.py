"""Generating images with a scalable fingerprinting network, with a record of what each image carries.

RNG order (the same whatever the flags): for each seed s, `torch.Generator().manual_seed(s)` draws
    1. z: z_dim values N(0, 1)                         (torch.randn)
    2. c: fingerprint_size fair bits                  (torch.randint(0, 2))
    3. only with noise_mode "random": the noise maps, layer by layer, shapes `G.noise_shapes()`.
`identical_latent` gives every image the z of the FIRST seed, `identical_fingerprint` the c of the
first seed, `fingerprint` one given code; the draws are made anyway, so the image of seed s with a
flag off is the image of seed s without any flag. An exported (fingerprinted) model ignores c and
carries its own fingerprint. With the default noise_mode "const" the stored noise maps are used, so
an image depends only on (z, c).

Files written into the output folder:
    seed0000.png ...                 the images (8-bit RGB PNG)
    generated_images.csv             name, seed, latent_seed, fingerprint_seed, fingerprint (bits), fingerprint_hex
    embedded_fingerprints.txt        `<name> <bits>` per image, sorted (the original tools' format)
    generation.json                  the network and the options
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..data import tensor_to_pil
from ..errors import GanprintError
from ..fingerprints import bits_to_hex, bits_to_str, write_fingerprint_file
from ..io import atomic_write_json, atomic_write_text
from ..visualize import save_png
from .network import ScalableNetwork

RECORD_CSV = "generated_images.csv"
FINGERPRINT_FILE = "embedded_fingerprints.txt"
GENERATION_JSON = "generation.json"
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")
MAX_SEEDS = 10_000_000


def parse_seeds(text: str) -> list[int]:
    """'0-63', '1,5,9', '0-3,10,20-21' -> a list of distinct non-negative seeds, in the order given."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if m := _RANGE.match(part):
            low, high = int(m.group(1)), int(m.group(2))
            if low > high:
                raise GanprintError(f"seeds {text!r}: range {part} runs backwards")
            if high - low + 1 + len(seeds) > MAX_SEEDS:
                raise GanprintError(f"seeds {text!r}: more than {MAX_SEEDS} seeds")
            seeds.extend(range(low, high + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise GanprintError(f"seeds {text!r}: cannot read {part!r}; use e.g. 0-63 or 1,5,9 (non-negative integers)")
    if any(s >= 2**63 for s in seeds):
        raise GanprintError(f"seeds {text!r}: seeds must be below 2^63")
    seen: set[int] = set()
    for s in seeds:
        if s in seen:
            raise GanprintError(f"seeds {text!r}: seed {s} appears twice")
        seen.add(s)
    return seeds


def draw(network: ScalableNetwork, seed: int, noise_mode: str = "const") -> tuple[torch.Tensor, torch.Tensor, list]:
    """(z (z_dim,), c (L,), noise maps or []) of one seed, in the documented order."""
    g = torch.Generator().manual_seed(seed)
    cfg = network.config
    z = torch.randn(cfg.z_dim, generator=g)
    c = torch.randint(0, 2, (cfg.fingerprint_size,), generator=g).float()
    noise = [torch.randn(*shape, generator=g) for shape in network.G.noise_shapes()] if noise_mode == "random" else []
    return z, c, noise


@dataclass
class GenerationSummary:
    images: int
    output_dir: Path
    fingerprint: str | None  # the shared fingerprint, when all images carry the same one


def generate_images(network: ScalableNetwork, seeds: list[int], output_dir: str | os.PathLike,
                    identical_latent: bool = False, identical_fingerprint: bool = False,
                    fingerprint: str | torch.Tensor | None = None, noise_mode: str = "const", batch_size: int = 64,
                    overwrite: bool = False, progress: bool = True, network_name: str = "") -> GenerationSummary:  # fmt: skip
    """Write one PNG per seed plus the records (see the module docstring)."""
    if not seeds:
        raise GanprintError("no seeds given")
    if noise_mode not in ("const", "random", "none"):
        raise GanprintError(f"noise mode must be const, random or none, got {noise_mode!r}")
    L = network.config.fingerprint_size
    shared = None
    if network.is_fingerprinted:
        if fingerprint is not None:
            raise GanprintError(f"{network_name or 'this network'} is an exported model with the fingerprint "
                                f"{bits_to_hex(network.fingerprint)} built in; it takes no --fingerprint")  # fmt: skip
        shared = network.fingerprint
    elif fingerprint is not None:
        shared = network.parse_fingerprint(fingerprint) if isinstance(fingerprint, str) else fingerprint.float().cpu()
        if shared.shape != (L,):
            raise GanprintError(f"fingerprint has {shared.numel()} bits; this network needs {L}")

    out = Path(output_dir)
    names = [f"seed{s:04d}.png" for s in seeds]
    if not overwrite:
        for name in (RECORD_CSV, FINGERPRINT_FILE, GENERATION_JSON, *names):
            if (out / name).exists():
                raise GanprintError(f"{out / name} already exists; choose another output folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)

    first_z, first_c, _ = draw(network, seeds[0], noise_mode)
    rows, entries = [], {}
    bar = tqdm(total=len(seeds), desc="generate", unit="img", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        zs, cs, noises = [], [], []
        for s in chunk:
            z, c, noise = draw(network, s, noise_mode)
            zs.append(first_z if identical_latent else z)
            cs.append(shared if shared is not None else first_c if identical_fingerprint else c)
            noises.append(noise)
        noise = [torch.stack([n[i] for n in noises]) for i in range(len(noises[0]))] if noise_mode == "random" else None
        c_in = None if network.is_fingerprinted else torch.stack(cs)
        images = network.generate(torch.stack(zs), c_in, noise_mode=noise_mode, noise=noise).cpu()
        for s, name, image, c in zip(chunk, names[start:], images, cs):
            save_png(tensor_to_pil(image), out / name)
            latent_seed = seeds[0] if identical_latent else s
            fp_seed = "" if shared is not None else seeds[0] if identical_fingerprint else s
            rows.append([name, s, latent_seed, fp_seed, bits_to_str(c), bits_to_hex(c)])
            entries[name] = c
        bar.update(len(chunk))
    bar.close()

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "seed", "latent_seed", "fingerprint_seed", "fingerprint", "fingerprint_hex"])
    writer.writerows(rows)
    atomic_write_text(out / RECORD_CSV, buffer.getvalue())
    write_fingerprint_file(out / FINGERPRINT_FILE, entries)
    atomic_write_json(out / GENERATION_JSON, {
        "network": network_name, "network_kind": network.config_dict()["kind"], "seeds": len(seeds),
        "first_seed": seeds[0], "identical_latent": identical_latent, "identical_fingerprint": identical_fingerprint,
        "fingerprint": bits_to_str(shared) if shared is not None else None, "noise_mode": noise_mode,
    })  # fmt: skip
    shared_bits = shared if shared is not None else first_c if identical_fingerprint else None
    return GenerationSummary(len(seeds), out, bits_to_hex(shared_bits) if shared_bits is not None else None)
