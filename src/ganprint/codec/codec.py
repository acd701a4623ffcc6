"""FingerprintCodec: the library surface of artificial fingerprinting.

    codec = FingerprintCodec.from_pretrained("codec-32")        # or a folder path
    marked = codec.embed(images, fingerprint)                   # tensors in [0,1] or PIL images
    result = codec.detect(marked, expected=fingerprint)         # DetectionResult with p-values
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from PIL import Image
from torch import nn

from .. import checkpoint
from ..data import pil_to_tensor, preprocess, tensor_to_pil, to_rgb
from ..device import resolve_device
from ..detection import DEFAULT_FALSE_POSITIVE_RATE, DetectionResult, check_finite
from ..errors import GanprintError
from ..fingerprints import fingerprint_batch, parse_fingerprint
from ..pretrained import resolve_model_dir
from .config import CodecConfig
from .networks import ConvDecoder, ResidualEncoder

if TYPE_CHECKING:
    from .refine import Refiner

Images = torch.Tensor | Image.Image | Sequence[Image.Image]


def build_encoder(config: CodecConfig) -> nn.Module:
    if config.arch == "original":
        from .original import OriginalEncoder

        return OriginalEncoder(config.resolution, config.fingerprint_length)
    return ResidualEncoder(config)


def build_decoder(config: CodecConfig) -> nn.Module:
    if config.arch == "original":
        from .original import OriginalDecoder

        return OriginalDecoder(config.resolution, config.fingerprint_length)
    return ConvDecoder(config)


class FingerprintCodec(nn.Module):
    """An encoder that embeds L-bit fingerprints into RxR images and a decoder that reads them.

    Either part may be absent (a codec imported from a lone decoder checkpoint only detects).
    """

    def __init__(self, config: CodecConfig, encoder: bool = True, decoder: bool = True):
        super().__init__()
        self.config = config.validate()
        self.encoder = build_encoder(config) if encoder else None
        self.decoder = build_decoder(config) if decoder else None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ----------------------------------------------------------------------------------- inputs
    def _as_batch(self, images: Images) -> tuple[torch.Tensor, str]:
        """(N,3,R,R) float tensor on the codec's device, and the kind of input to give back."""
        r = self.config.resolution
        if isinstance(images, torch.Tensor):
            kind = "tensor" if images.ndim == 4 else "single-tensor"
            batch = images if images.ndim == 4 else images.unsqueeze(0)
            if not batch.is_floating_point():
                raise GanprintError("image tensors must be float in [0, 1]")
        else:
            kind = "pil" if isinstance(images, Image.Image) else "pil-list"
            pils = [images] if isinstance(images, Image.Image) else list(images)
            if not pils:
                raise GanprintError("no images given")
            batch = torch.stack([pil_to_tensor(preprocess(to_rgb(im), r)) for im in pils])
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise GanprintError(f"expected RGB images of shape (N,3,{r},{r}), got {tuple(batch.shape)}")
        if batch.shape[-2:] != (r, r):
            raise GanprintError(f"this codec works on {r}x{r} images, got {batch.shape[-2]}x{batch.shape[-1]}")
        return batch.to(self.device, torch.float32), kind

    def _as_bits(self, fingerprints, count: int) -> torch.Tensor:
        return fingerprint_batch(fingerprints, count, self.config.fingerprint_length).to(self.device)

    # -------------------------------------------------------------------------------- the verbs
    def embed(self, images: Images, fingerprints, batch_size: int = 256, strength: float | None = None,
              refine: int | Refiner = 0):  # fmt: skip
        """Fingerprint images. `fingerprints`: one (L,) or one per image (N, L), 0/1, or a bits/hex string.

        Tensors in [0,1] come back as tensors; PIL images are preprocessed (shorter side resized,
        center crop) and come back as PIL images. `strength` overrides the residual RMS (ganprint arch).
        `refine`: Adam steps (or a `Refiner`) of informed embedding per image after the encoder, which
        make the fingerprint harder to erase at the same PSNR (codec/refine.py; needs the decoder).
        """
        if self.encoder is None:
            raise GanprintError("this codec has no encoder (it was built from a decoder only)")
        refiner = None
        if not isinstance(refine, int):
            refiner = refine if refine.steps else None
        elif refine:
            from .refine import Refiner  # noqa: F811 (kornia loads only here)

            refiner = Refiner(steps=refine)
        if refiner is not None and self.decoder is None:
            raise GanprintError("refining the embedding needs the codec's decoder")
        batch, kind = self._as_batch(images)
        bits = self._as_bits(fingerprints, batch.shape[0])
        self.encoder.eval()
        outs = []
        for start in range(0, batch.shape[0], batch_size):
            x, b = batch[start : start + batch_size], bits[start : start + batch_size]
            with torch.no_grad():
                if isinstance(self.encoder, ResidualEncoder):
                    marked = self.encoder(x, b, rms=strength)
                else:
                    marked = self.encoder(x, b)
            mean_preserving = getattr(self.encoder, "mean_preserving", False)
            outs.append(marked if refiner is None else refiner(self.decoder, x, b, marked, mean_preserving))
        out = torch.cat(outs)
        check_finite(out, "the encoder")  # a broken model must not write black "fingerprinted" images
        return self._give_back(out, kind)

    @torch.inference_mode()
    def decode_logits(self, images: Images, batch_size: int = 256) -> torch.Tensor:
        """Raw bit logits (N, L) on the CPU; bit = logit > 0."""
        if self.decoder is None:
            raise GanprintError("this codec has no decoder (it was built from an encoder only)")
        batch, _ = self._as_batch(images)
        self.decoder.eval()
        return torch.cat([self.decoder(batch[s : s + batch_size]) for s in range(0, batch.shape[0], batch_size)]).cpu()

    def detect(
        self,
        images: Images,
        expected=None,
        false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
        batch_size: int = 256,
    ) -> DetectionResult:
        """Read fingerprints; with `expected` (bits, (N, L) or a string) add accuracy, p-values, verdicts.
        Flat images (ganprint.texture) get no verdict: never detected, verdict "not-enough-signal"."""
        batch, _ = self._as_batch(images)
        logits = self.decode_logits(batch, batch_size)
        if isinstance(expected, str):
            expected = parse_fingerprint(expected, self.config.fingerprint_length)
        return DetectionResult.from_logits(logits, expected, false_positive_rate, images=batch)

    @staticmethod
    def _give_back(out: torch.Tensor, kind: str):
        if kind == "tensor":
            return out
        if kind == "single-tensor":
            return out[0]
        pils = [tensor_to_pil(t) for t in out.cpu()]
        return pils[0] if kind == "pil" else pils

    # ------------------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json + model.safetensors (inference weights only)."""
        return checkpoint.save_pretrained(directory, self.config.to_dict(), self.state_dict())

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "codec-32", device: str | torch.device = "cpu"):
        """Load a shipped model by name (e.g. "codec-32") or a folder written by save_pretrained."""
        directory = resolve_model_dir(name_or_path)
        config = CodecConfig.from_dict(checkpoint.read_config(directory), str(directory / checkpoint.CONFIG_NAME))
        weights = checkpoint.read_weights(directory)
        has_encoder = any(k.startswith("encoder.") for k in weights)
        has_decoder = any(k.startswith("decoder.") for k in weights)
        if not (has_encoder or has_decoder):
            raise GanprintError(f"{directory}: no encoder or decoder weights in {checkpoint.WEIGHTS_NAME}")
        codec = cls(config, encoder=has_encoder, decoder=has_decoder)
        checkpoint.load_state(codec, weights, str(directory / checkpoint.WEIGHTS_NAME))
        return codec.to(resolve_device(device)).eval()

