"""Reading fingerprints from any folder of images with a scalable network's decoder F.

The same files and statistics as the codec's detection (`ganprint.codec.folders.detect_folder`):
detected_fingerprints.txt, and with an expected fingerprint (bits, hex, or an
embedded_fingerprints.txt such as `scalable generate` writes) detection_report.csv with per-image
bit accuracy, p-value and verdict. ScalableNetwork offers the detector interface that function
uses (`decoder`, `config.resolution`, `config.fingerprint_length`, `decode_logits`).
"""

from __future__ import annotations

import os
from typing import Callable

import torch

from ..codec.folders import DetectSummary, detect_folder
from ..detection import DEFAULT_FALSE_POSITIVE_RATE, NullModel
from ..errors import GanprintError
from .network import ScalableNetwork


def detect(network: ScalableNetwork, data: str | os.PathLike, output_dir: str | os.PathLike,
           expected: str | os.PathLike | torch.Tensor | None = None,
           false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE, batch_size: int = 64, strict: bool = False,
           overwrite: bool = False, progress: bool = True,
           on_bad: Callable[[str, str], None] | None = None, null: NullModel | None = None) -> DetectSummary:  # fmt: skip
    """Decode every image of `data` (folder, zip, ...; brought to the network's resolution).
    `null`: the per-image null model of the p-values (default fair coins; see ganprint.calibration)."""
    if network.F is None:
        raise GanprintError("this is an exported fingerprinted generator without a decoder; "
                            "detect with the full network (generator + decoder) it came from")  # fmt: skip
    return detect_folder(network, data, output_dir, expected=expected, false_positive_rate=false_positive_rate,
                         batch_size=batch_size, strict=strict, overwrite=overwrite, progress=progress, on_bad=on_bad, null=null)  # fmt: skip
