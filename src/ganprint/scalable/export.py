"""Deployment: a standalone fingerprinted generator G_c(z) made from G(z, c) for one code c.

The code goes through the mapping network once; every modulated layer's style (and demodulation)
is folded into its convolution weights (`stylegan.Generator.fold`). The result is an ordinary
generator with no fingerprint input and no mapping network, saved as config.json
(`kind: ganprint.scalable.fingerprinted`, with the fingerprint) + model.safetensors. Its images
equal G(z, c) up to float rounding (tested within 1e-5). The decoder F is not included: whoever
detects keeps the full network.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME
from ..errors import GanprintError
from .network import ScalableNetwork


def export_fingerprinted(network: ScalableNetwork, fingerprint: str | torch.Tensor) -> ScalableNetwork:
    """The fingerprinted model G_c for `fingerprint` (bits or hex for this network's length)."""
    if network.is_fingerprinted:
        raise GanprintError("this network is already an exported fingerprinted model; export from the full network")
    bits = network.parse_fingerprint(fingerprint) if isinstance(fingerprint, str) else fingerprint.float().cpu()
    if bits.shape != (network.config.fingerprint_size,):
        raise GanprintError(f"fingerprint has {bits.numel()} bits; this network needs {network.config.fingerprint_size}")
    exported = ScalableNetwork(network.config, decoder=False, fingerprint=bits).to(network.device)
    exported.G.load_state_dict(network.G.fold(bits).state_dict())
    return exported.eval()


def export_to_folder(network: ScalableNetwork, fingerprint: str | torch.Tensor, output: str | os.PathLike,
                     overwrite: bool = False) -> ScalableNetwork:  # fmt: skip
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise GanprintError(f"{out}: exists and is not a folder")
    if not overwrite and any((out / name).exists() for name in (CONFIG_NAME, WEIGHTS_NAME)):
        raise GanprintError(f"{out} already holds a model; pass --overwrite to replace it")
    exported = export_fingerprinted(network, fingerprint)
    exported.save_pretrained(out)
    return exported
