"""The robustness grid: every subject under every attack level, scored like a detector is used.

For each subject, the row `none` (no attack) comes first, then one row per attack level:
- image attacks perturb the subject's fingerprinted images (rounded to 8 bits before and after, as
  saved files would be), then its decoder reads them;
- model attacks perturb a copy of the subject's network (`attack_target`), which makes the images
  anew; subjects without a network skip them (listed in `meta["skipped"]`).

Row columns (see docs/robustness.md):
    model, kind, attack, level, label, parameter, images, fingerprint_length
    bit_accuracy, bit_accuracy_std, bit_accuracy_min   mean / spread / worst over images
    p_value_median, neg_log10_p_median                 per-image p-values under the decoder's null model
                                                       (its calibration if it has one, else fair coins)
    detection_rate                                     share of images whose p-value <= fpr
    threshold_bits                                     matching bits that detection needs at that fpr
    psnr_attack, ssim_attack                           attacked vs unattacked fingerprinted images
    psnr_clean, ssim_clean                             fingerprinted (this row's, unattacked) vs clean
    clean_bit_accuracy, clean_detection_rate           clean images under the same attack, read
                                                       against the same fingerprints: the false-
                                                       positive control (should be ~0.5 and ~fpr)
Columns a subject cannot fill (no clean images) are None.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..attacks import AttackLevel
from ..detection import DEFAULT_FALSE_POSITIVE_RATE, DetectionResult
from .quality import psnr, ssim
from .subjects import Sample, Subject, to_8bit

COLUMNS = [
    "model", "kind", "attack", "level", "label", "parameter", "images", "fingerprint_length",
    "bit_accuracy", "bit_accuracy_std", "bit_accuracy_min", "p_value_median", "neg_log10_p_median",
    "detection_rate", "threshold_bits", "psnr_attack", "ssim_attack", "psnr_clean", "ssim_clean",
    "clean_bit_accuracy", "clean_detection_rate",
]  # fmt: skip


@dataclass
class GridResult:
    rows: list[dict]
    examples: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)  # (model, label) -> uint8 (k,3,H,W)
    meta: dict = field(default_factory=dict)
    levels: list[AttackLevel] = field(default_factory=list)

    def row(self, model: str, label: str) -> dict | None:
        return next((r for r in self.rows if r["model"] == model and r["label"] == label), None)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r["model"] for r in self.rows))


def _median(values: list[float]) -> float:
    return float(torch.tensor(values, dtype=torch.float64).median().item()) if values else math.nan


def _detection(subject: Subject, images: torch.Tensor, expected: torch.Tensor, fpr: float) -> DetectionResult:
    return DetectionResult.from_logits(subject.decode_logits(images), expected, fpr, null=subject.null, images=images)


def score(subject: Subject, attacked: torch.Tensor, reference: torch.Tensor, sample: Sample,
          attacked_clean: torch.Tensor | None, fpr: float) -> dict:  # fmt: skip
    """The numbers of one row. `reference`: the unattacked fingerprinted images of the subject;
    `sample`: this row's (possibly model-attacked) sample; `attacked_clean`: its clean images under the
    same attack."""
    length = subject.fingerprint_length
    result = _detection(subject, attacked, sample.expected, fpr)
    acc = result.bit_accuracy
    row = {
        "images": len(acc),
        "fingerprint_length": length,
        "bit_accuracy": acc.mean().item(),
        "bit_accuracy_std": acc.std(unbiased=False).item(),
        "bit_accuracy_min": acc.min().item(),
        "p_value_median": _median(result.p_value),
        "neg_log10_p_median": _median(result.neg_log10_p),
        "detection_rate": sum(result.detected) / len(result.detected),
        "threshold_bits": result.threshold,
        "psnr_attack": psnr(attacked, reference).mean().item(),
        "ssim_attack": ssim(attacked, reference).mean().item(),
        "psnr_clean": None, "ssim_clean": None, "clean_bit_accuracy": None, "clean_detection_rate": None,
    }  # fmt: skip
    if sample.clean is not None:
        row["psnr_clean"] = psnr(sample.images, sample.clean).mean().item()
        row["ssim_clean"] = ssim(sample.images, sample.clean).mean().item()
    if attacked_clean is not None:
        control = _detection(subject, attacked_clean, sample.expected, fpr)
        row["clean_bit_accuracy"] = control.bit_accuracy.mean().item()
        row["clean_detection_rate"] = sum(control.detected) / len(control.detected)
    return row


def _uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def run_grid(
    subjects: list[Subject],
    levels: list[AttackLevel],
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
    seed: int = 0,
    examples: int = 4,
    progress: bool = True,
) -> GridResult:
    """Evaluate every subject under `levels` (image and model attacks); one row per (subject, level)
    plus the unattacked row `none` per subject."""
    fpr = false_positive_rate
    result = GridResult(rows=[], levels=list(levels))
    skipped: list[dict] = []
    started = time.time()
    bar = tqdm(total=len(subjects) * (1 + len(levels)), desc="evaluate", unit="cell", disable=not progress,
               dynamic_ncols=True)  # fmt: skip
    sample_seconds: dict[str, float] = {}
    for subject in subjects:
        t = time.time()
        base = subject.sample()
        sample_seconds[subject.name] = round(time.time() - t, 3)  # making the fingerprinted images
        bar.set_postfix_str(f"{subject.name} none")
        row = score(subject, base.images, base.images, base, base.clean, fpr)
        result.rows.append({"model": subject.name, "kind": "none", "attack": "none", "level": None, "label": "none",
                            "parameter": "", **row})  # fmt: skip
        result.examples[(subject.name, "none")] = _uint8(base.images[:examples])
        bar.update(1)
        for level in levels:
            bar.set_postfix_str(f"{subject.name} {level.label}")
            if level.kind == "image":
                sample = base
                attacked = to_8bit(level.apply(base.images, seed=seed))
                attacked_clean = to_8bit(level.apply(base.clean, seed=seed)) if base.clean is not None else None
            else:
                target = subject.attack_target()
                loss = subject.finetune_loss()
                if target is None or (level.attack.name == "finetune" and loss is None):
                    why = "no network to attack" if target is None else "no clean-data loss for fine-tuning"
                    skipped.append({"model": subject.name, "label": level.label, "reason": why})
                    bar.update(1)
                    continue
                attacked_model = level.apply(target, seed=seed, loss_fn=loss)
                sample = subject.sample(attacked_model)
                attacked, attacked_clean = sample.images, sample.clean
            row = score(subject, attacked, base.images, sample, attacked_clean, fpr)
            result.rows.append({
                "model": subject.name, "kind": level.kind, "attack": level.attack.name, "level": level.value,
                "label": level.label, "parameter": level.attack.parameter, **row,
            })  # fmt: skip
            result.examples[(subject.name, level.label)] = _uint8(attacked[:examples])
            bar.update(1)
    bar.close()
    from .. import __version__

    result.meta = {
        "false_positive_rate": fpr,
        "seed": seed,
        "subjects": [s.describe() for s in subjects],
        "skipped": skipped,
        "seconds": round(time.time() - started, 2),
        "sample_seconds": sample_seconds,
        "ganprint_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
    return result
