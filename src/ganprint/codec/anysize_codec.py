"""AnySizeCodec: the verbs (embed, decode_logits, detect) on images of any size, for the networks of
codec/anysize.py. PIL images come back as PIL images of the same size and mode (image_modes.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from .. import checkpoint
from ..detection import DEFAULT_FALSE_POSITIVE_RATE, DetectionResult
from ..device import resolve_device
from ..errors import GanprintError
from ..fingerprints import fingerprint_batch, parse_fingerprint
from ..image_modes import marked_like, rgb_for_marking, stays_grey, storage_levels
from ..pretrained import resolve_model_dir
from .anysize import (KIND, AnySizeConfig, FoldingDecoder, build_encoder, check_image_size, image_texture, to_native,
                      to_working)
from .anysize_refine import AnySizeRefiner

SUBCELL_SHIFTS = (0, 2, 4, 6)  # px moves of the reduced views (the decoder's cells are 8 px)
# informed-embedding steps a greyscale image gets by default (its colour residual would average away);
# colour images get none unless asked: docs/codec-design.md, "Informed embedding at working resolution"
GREY_REFINE_STEPS = 10

Images = torch.Tensor | Image.Image | Sequence[Image.Image] | Sequence[torch.Tensor]


class AnySizeCodec(nn.Module):
    """Embeds L-bit fingerprints into images of any size (64 px to 8K) and reads them back."""

    any_size = True

    def __init__(self, config: AnySizeConfig, encoder: bool = True, decoder: bool = True):
        super().__init__()
        self.config = config.validate()
        self.encoder = build_encoder(config) if encoder else None
        self.decoder = FoldingDecoder(config) if decoder else None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ----------------------------------------------------------------------------------- inputs
    @staticmethod
    def _as_list(images: Images) -> tuple[list, str]:
        if isinstance(images, Image.Image):
            return [images], "pil"
        if isinstance(images, torch.Tensor):
            if images.ndim == 3:
                return [images], "single-tensor"
            if images.ndim == 4:
                return list(images), "tensor"
            raise GanprintError(f"expected image tensors (3,H,W) or (N,3,H,W), got shape {tuple(images.shape)}")
        items = list(images)
        if not items:
            raise GanprintError("no images given")
        return items, "pil-list" if isinstance(items[0], Image.Image) else "tensor-list"

    def _tensor(self, item, index: int) -> torch.Tensor:
        """(1,3,H,W) float on the codec's device, size checked."""
        if isinstance(item, Image.Image):
            t = rgb_for_marking(item)
        elif isinstance(item, torch.Tensor):
            if item.ndim != 3 or item.shape[0] != 3 or not item.is_floating_point():
                raise GanprintError(f"image {index}: expected a float RGB tensor (3,H,W) in [0,1], got {tuple(item.shape)}")
            t = item
        else:
            raise GanprintError(f"image {index}: expected a PIL image or a tensor, got {type(item).__name__}")
        check_image_size(t.shape[-2], t.shape[-1], self.config, f"image {index}")
        # a finite sum is the cheap common case (one pass); only then is the element-wise check skipped
        if isinstance(item, torch.Tensor) and not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
            raise GanprintError(f"image {index}: holds non-finite values")
        return t.to(self.device, torch.float32).unsqueeze(0)

    def _as_bits(self, fingerprints, count: int) -> torch.Tensor:
        return fingerprint_batch(fingerprints, count, self.config.fingerprint_length).to(self.device)

    # -------------------------------------------------------------------------------- the verbs
    def residual(self, image: torch.Tensor, bits: torch.Tensor, strength: float | None = None,
                 refiner: AnySizeRefiner | None = None, grey: bool = False, levels: float | None = 255) -> torch.Tensor:  # fmt: skip
        """The residual at native size for one (1,3,H,W) image and (1,L) bits; with a `refiner`, tuned
        against the decoder (codec/anysize_refine.py), one grey channel with `grey` (broadcast to RGB)."""
        h, w = image.shape[-2:]
        with torch.no_grad():
            working = to_working(image, self.config.working_resolution)
            r = self.encoder(working, bits, rms=strength) * self.energy_share(working).view(-1, 1, 1, 1)
        if not torch.isfinite(r).all():
            raise GanprintError("the encoder produced non-finite values: the model is broken")
        if refiner is not None:
            r = refiner(self.decoder, image, bits, r, self.config.mask_floor, grey, levels)
        with torch.no_grad():
            return to_native(r, h, w)

    def energy_share(self, working: torch.Tensor) -> torch.Tensor:
        """(N,): the share of the residual's energy (RMS) each working-size image gets: 1, or less for a
        flat image (`AnySizeConfig.flat_texture`). Gradients and skies show a residual where texture
        would hide it, and the decoder reads them at a third of the energy (docs/codec-design.md)."""
        if self.config.flat_texture is None:
            return torch.ones(len(working), device=working.device)
        share = image_texture(working) / self.config.flat_texture
        return share.clamp(self.config.flat_energy_floor, 1.0)

    def refiner_for(self, refine: int | AnySizeRefiner | None, grey: bool) -> AnySizeRefiner | None:
        """What `embed`'s `refine` means for one image: None (the default) refines greyscale images with
        GREY_REFINE_STEPS steps (without the JPEG view) and leaves colour ones to the encoder; a number is
        the steps for every image (AnySizeRefiner's defaults)."""
        if refine is None:  # an encoder alone cannot refine: its grey images are embedded as before
            # no JPEG view for the default: it doubles the cost and grey reads no better clean (docs/codec-design.md)
            refine = AnySizeRefiner(GREY_REFINE_STEPS, jpeg_quality=None) if grey and self.decoder is not None else 0
        if isinstance(refine, int) and not isinstance(refine, bool):
            refine = AnySizeRefiner(steps=refine) if refine else None
        elif not isinstance(refine, AnySizeRefiner) and refine is not None:
            raise GanprintError(f"refine must be a number of steps or an AnySizeRefiner, got {refine!r}")
        if refine is not None and refine.steps and self.decoder is None:
            raise GanprintError("refining the embedding needs the codec's decoder; give a full codec")
        return refine if refine is not None and refine.steps else None

    def embed(self, images: Images, fingerprints, strength: float | None = None,
              refine: int | AnySizeRefiner | None = None):  # fmt: skip
        """Fingerprint images of any size. `fingerprints`: one (L,) or one per image (N, L), 0/1, or a
        bits/hex string. PIL images come back as PIL images of the same size and mode (alpha, greyscale
        and 16-bit kept); tensors (3,H,W) in [0,1] as tensors. `strength` overrides the residual RMS.
        `refine`: steps of informed embedding per image (codec/anysize_refine.py: every bit read with a
        margin, at no lower PSNR); None: greyscale PIL images get GREY_REFINE_STEPS and a grey residual
        (a colour one averages away in grey), colour images none."""
        if self.encoder is None:
            raise GanprintError("this codec has no encoder (it was built from a decoder only)")
        items, kind = self._as_list(images)
        bits = self._as_bits(fingerprints, len(items))
        out = []
        for i, item in enumerate(items):
            x = self._tensor(item, i)
            pil = isinstance(item, Image.Image)
            grey = pil and stays_grey(item)
            refiner = self.refiner_for(refine, grey)
            r = self.residual(x, bits[i : i + 1], strength, refiner, grey, storage_levels(item) if pil else 255)
            marked = (x + r).clamp_(0, 1)[0]  # clamped in place: one copy less
            out.append(marked_like(item, marked.cpu()) if pil else marked)
        if kind in ("pil", "single-tensor"):
            return out[0]
        return torch.stack(out) if kind == "tensor" else out

    def readings(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, readings, L) of (N,3,H,W) images, in `reading_scales` order: the uncropped reading
        (working size, every tile shift), then at each reduced working size (a crop magnifies the tile
        grid) the view moved by 0, 2, 4 and 6 px down and right, every tile shift of each. A crop rarely
        starts on the grid of the decoder's 8 px cells (a crop keeping half the area, centred: 0.65 at
        the best cell shift unmoved, 0.97 moved by 6 px); the moves come from one pass per size
        (FoldingDecoder.fold_moved)."""
        base = to_working(images, self.config.working_resolution)
        return torch.cat([self.uncropped_readings(base), self.reduced_readings(base)], dim=1)

    def uncropped_readings(self, base: torch.Tensor) -> torch.Tensor:
        """The first `reading_scales` readings: working size, every tile shift (N, shifts, L)."""
        return self.decoder.read_all_shifts(self.decoder.fold(base))

    def reduced_readings(self, base: torch.Tensor) -> torch.Tensor:
        """The other readings: each reduced working size, moved views, every tile shift."""
        w, out = self.config.working_resolution, []
        for s in self.config.scales[1:]:
            folded = self.decoder.fold_moved(to_working(base, max(2 * 8, round(w * s))), SUBCELL_SHIFTS)
            readings = self.decoder.read_all_shifts(folded.flatten(0, 1))
            out.append(readings.view(len(base), -1, self.config.fingerprint_length))
        return torch.cat(out, dim=1)

    def decode_logits(self, images: Images) -> torch.Tensor:
        """Raw bit logits (N, L) on the CPU; bit = logit > 0. For each image, the scale and tile shift
        whose reading stands out most (`search_scores`), chosen without looking at any fingerprint."""
        return self._read(images)[0]

    @torch.inference_mode()
    def _read(self, images: Images) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N, L), the images at working resolution (N, 3, W, W): what the texture check sees)."""
        if self.decoder is None:
            raise GanprintError("this codec has no decoder (it was built from an encoder only)")
        items, _ = self._as_list(images)
        self.decoder.eval()
        # every image at working size first, so that one batch reads them all whatever their sizes
        base = torch.cat([to_working(self._tensor(item, i), self.config.working_resolution) for i, item in enumerate(items)])
        logits = self.uncropped_readings(base)  # (N, shifts, L)
        scores = self.search_scores(logits)
        # the reduced views only pay off on crops: an uncropped reading standing this far out is kept
        unsure = torch.ones(len(base), dtype=torch.bool, device=scores.device)
        if self.config.search_null is not None and self.config.confident_score is not None:
            unsure = scores.max(1).values < self.config.confident_score
        best = logits[torch.arange(len(base)), scores.argmax(1)]
        if bool(unsure.any()):
            full = torch.cat([logits[unsure], self.reduced_readings(base[unsure])], dim=1)  # `readings` order
            best[unsure] = full[torch.arange(len(full)), self.search_scores(full).argmax(1)]
        if not torch.isfinite(best).all():
            raise GanprintError("the decoder produced non-finite values: the model is broken")
        return best.cpu(), base.cpu()

    def search_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, scales * shifts): how much each reading stands out. Its confidence (mean |logit|) in stds
        above what that scale reads on clean images, the uncropped reading given `canonical_bonus`.
        Nothing here looks at a fingerprint: on an unmarked image the kept bits stay fair coins."""
        confidence = logits.abs().mean(-1)
        if self.config.search_null is None:
            return confidence
        null = torch.tensor(self.config.search_null, dtype=confidence.dtype, device=confidence.device)
        scale = self.reading_scales()[: logits.shape[1]].to(confidence.device)  # `readings` order, or its start
        scores = (confidence - null[scale, 0]) / null[scale, 1]
        scores[:, 0] += self.config.canonical_bonus
        return scores

    def reading_scales(self) -> torch.Tensor:
        """The scale index of each reading `_read` makes: per view, one per tile shift."""
        views = [0] + [k for k in range(1, len(self.config.scales)) for _ in range(len(SUBCELL_SHIFTS) ** 2)]
        return torch.tensor(views).repeat_interleave(self.decoder.cells**2)

    @torch.inference_mode()
    def measure_search_null(self, images: Sequence[torch.Tensor]) -> tuple[tuple[float, float], ...]:
        """Mean and std of each scale's reading confidence on clean images (for `search_null`)."""
        per_scale: list[list[torch.Tensor]] = [[] for _ in self.config.scales]
        scale = self.reading_scales()
        for image in images:
            confidence = self.readings(image.unsqueeze(0).to(self.device))[0].abs().mean(-1)
            for k in range(len(self.config.scales)):
                per_scale[k].append(confidence[scale == k])
        stats = [torch.cat(c) for c in per_scale]
        return tuple((round(c.mean().item(), 5), round(c.std().item(), 5)) for c in stats)

    def detect(self, images: Images, expected=None, false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
               batch_size: int | None = None) -> DetectionResult:  # fmt: skip
        """Read fingerprints; with `expected` (bits, (N, L) or a string) add accuracy, p-values, verdicts.
        Flat images (ganprint.texture) get no verdict: never detected, verdict "not-enough-signal"."""
        logits, seen = self._read(images)
        if isinstance(expected, str):
            expected = parse_fingerprint(expected, self.config.fingerprint_length)
        return DetectionResult.from_logits(logits, expected, false_positive_rate, images=seen)

    # ------------------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json + model.safetensors (inference weights only)."""
        return checkpoint.save_pretrained(directory, self.config.to_dict(), self.state_dict())

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> "AnySizeCodec":
        directory = resolve_model_dir(name_or_path)
        data = checkpoint.read_config(directory)
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise GanprintError(f"{directory}: not an any-size codec")
        config = AnySizeConfig.from_dict(data, str(directory / checkpoint.CONFIG_NAME))
        weights = checkpoint.read_weights(directory)
        has_encoder = any(k.startswith("encoder.") for k in weights)
        has_decoder = any(k.startswith("decoder.") for k in weights)
        if not (has_encoder or has_decoder):
            raise GanprintError(f"{directory}: no encoder or decoder weights in {checkpoint.WEIGHTS_NAME}")
        codec = cls(config, encoder=has_encoder, decoder=has_decoder)
        checkpoint.load_state(codec, weights, str(directory / checkpoint.WEIGHTS_NAME))
        return codec.to(resolve_device(device)).eval()
