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

Native-size subjects (any-size codecs: `subject.native`) are run image by image, so memory stays flat
in the number of images: each image is embedded once, attacked at its own size by every level (image
k with seed `seed + k`), and read; the rows gather the readings. An attack that changes the size
(`rescale`, `crop_area`, ...) has no PSNR/SSIM against the unattacked image (None). Fixed-resolution
subjects skip such attacks (listed in `meta["skipped"]`): their decoders read one size only.
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
from ..texture import ImageSignal, distinct_colours, texture
from .quality import PSNR_CAP, psnr, ssim
from .subjects import NativeImage, NativeSubject, Sample, Subject, to_8bit

COLUMNS = [
    "model", "kind", "attack", "level", "label", "parameter", "images", "fingerprint_length",
    "bit_accuracy", "bit_accuracy_std", "bit_accuracy_min", "p_value_median", "neg_log10_p_median",
    "detection_rate", "threshold_bits", "psnr_attack", "ssim_attack", "psnr_clean", "ssim_clean",
    "clean_bit_accuracy", "clean_detection_rate",
]  # fmt: skip


@dataclass
class GridResult:
    rows: list[dict]
    # (model, label) -> uint8 (k,3,H,W), or for native-size subjects a list of uint8 thumbnails (3,h,w)
    examples: dict[tuple[str, str], torch.Tensor | list[torch.Tensor]] = field(default_factory=dict)
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
    result = _detection(subject, attacked, sample.expected, fpr)
    control = _detection(subject, attacked_clean, sample.expected, fpr) if attacked_clean is not None else None
    quality = {"psnr_attack": psnr(attacked, reference).mean().item(), "ssim_attack": ssim(attacked, reference).mean().item()}
    if sample.clean is not None:
        quality["psnr_clean"] = psnr(sample.images, sample.clean).mean().item()
        quality["ssim_clean"] = ssim(sample.images, sample.clean).mean().item()
    return summarize(subject, result, control, **quality)


def summarize(subject: Subject, result: DetectionResult, control: DetectionResult | None, psnr_attack=None,
              ssim_attack=None, psnr_clean=None, ssim_clean=None) -> dict:  # fmt: skip
    """A row's numbers from the reading of the fingerprinted images (`result`), of the clean ones
    (`control`, or None) and the image-quality means."""
    acc = result.bit_accuracy
    row = {
        "images": len(acc),
        "fingerprint_length": subject.fingerprint_length,
        "bit_accuracy": acc.mean().item(),
        "bit_accuracy_std": acc.std(unbiased=False).item(),
        "bit_accuracy_min": acc.min().item(),
        "p_value_median": _median(result.p_value),
        "neg_log10_p_median": _median(result.neg_log10_p),
        "detection_rate": sum(result.detected) / len(result.detected),
        "threshold_bits": result.threshold,
        "psnr_attack": psnr_attack, "ssim_attack": ssim_attack, "psnr_clean": psnr_clean, "ssim_clean": ssim_clean,
        "clean_bit_accuracy": None, "clean_detection_rate": None,
    }  # fmt: skip
    if control is not None:
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
        if subject.native:
            t = time.time()
            _run_native(subject, levels, fpr, seed, examples, result, skipped, bar)
            sample_seconds[subject.name] = round(time.time() - t, 3)  # the whole run: images come one at a time
            continue
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
            if level.kind == "image" and not level.attack.keeps_size:
                reason = "changes the image size; a fixed-resolution decoder reads one size only"
                skipped.append({"model": subject.name, "label": level.label, "reason": reason})
                bar.update(1)
                continue
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


# ------------------------------------------------------------------------------- native sizes
THUMBNAIL_HEIGHT = 96  # example images of native-size subjects, shown in the report


def _thumbnail(image: torch.Tensor) -> torch.Tensor:
    """uint8 (3, h, w) of an image (3, H, W) in [0, 1], THUMBNAIL_HEIGHT tall, aspect kept."""
    h, w = image.shape[-2:]
    size = (THUMBNAIL_HEIGHT, max(1, round(w * THUMBNAIL_HEIGHT / h)))
    small = torch.nn.functional.interpolate(image.unsqueeze(0).float(), size=size, mode="bilinear",
                                            antialias=True, align_corners=False)[0]  # fmt: skip
    return (small.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


@dataclass
class _Readings:
    """What one row gathers over the images of a native-size subject."""

    logits: list[torch.Tensor] = field(default_factory=list)
    texture: list[float] = field(default_factory=list)
    colours: list[int] = field(default_factory=list)
    control_logits: list[torch.Tensor] = field(default_factory=list)
    control_texture: list[float] = field(default_factory=list)
    control_colours: list[int] = field(default_factory=list)
    expected: list[torch.Tensor] = field(default_factory=list)
    psnr_attack: list[float] = field(default_factory=list)
    ssim_attack: list[float] = field(default_factory=list)
    psnr_clean: list[float] = field(default_factory=list)
    ssim_clean: list[float] = field(default_factory=list)
    examples: list[torch.Tensor] = field(default_factory=list)
    resized: bool = False  # the attack changed an image's size: no PSNR/SSIM against the unattacked one

    def read(self, subject: NativeSubject, image: torch.Tensor, control: bool = False) -> None:
        logits = subject.decode_logits([image])
        view = subject.decoder_view(image).unsqueeze(0)
        prefix = "control_" if control else ""
        getattr(self, prefix + "logits").append(logits)
        getattr(self, prefix + "texture").append(float(texture(view)[0]))
        getattr(self, prefix + "colours").append(int(distinct_colours(view)[0]))

    def detection(self, subject: NativeSubject, fpr: float, control: bool = False) -> DetectionResult | None:
        prefix = "control_" if control else ""
        logits = getattr(self, prefix + "logits")
        if not logits:
            return None
        result = DetectionResult.from_logits(torch.cat(logits), None, fpr, null=subject.null)
        result.signal = ImageSignal(torch.tensor(getattr(self, prefix + "texture")),
                                    torch.tensor(getattr(self, prefix + "colours")))  # fmt: skip
        return result.compare(torch.stack(self.expected))

    def row(self, subject: NativeSubject, fpr: float) -> dict:
        mean = lambda values: sum(values) / len(values) if values else None  # noqa: E731
        return summarize(
            subject, self.detection(subject, fpr), self.detection(subject, fpr, control=True),
            psnr_attack=None if self.resized else mean(self.psnr_attack),
            ssim_attack=None if self.resized else mean(self.ssim_attack),
            psnr_clean=mean(self.psnr_clean), ssim_clean=mean(self.ssim_clean),
        )  # fmt: skip


def _run_native(subject: NativeSubject, levels: list[AttackLevel], fpr: float, seed: int, examples: int,
                result: GridResult, skipped: list[dict], bar) -> None:  # fmt: skip
    """The rows of a native-size subject: image by image, every level on each image at its own size."""
    image_levels = [level for level in levels if level.kind == "image"]
    model_levels = []  # (level, attacked copy of the subject's network), made once
    for level in levels:
        if level.kind != "model":
            continue
        target, loss = subject.attack_target(), subject.finetune_loss()
        if target is None or (level.attack.name == "finetune" and loss is None):
            why = "no network to attack" if target is None else "no clean-data loss for fine-tuning"
            skipped.append({"model": subject.name, "label": level.label, "reason": why})
            continue
        model_levels.append((level, level.apply(target, seed=seed, loss_fn=loss)))
    rows = {"none": _Readings(), **{level.label: _Readings() for level in image_levels},
            **{level.label: _Readings() for level, _ in model_levels}}  # fmt: skip
    for k, item in enumerate(subject.images()):
        bar.set_postfix_str(f"{subject.name} image {k + 1}")
        clean_quality = None
        if item.clean is not None:
            clean_quality = (psnr([item.marked], [item.clean]).item(), ssim([item.marked], [item.clean]).item())
        _gather(rows["none"], subject, item, item.marked, item.clean, clean_quality, k < examples, same=True)
        for level in image_levels:
            attacked = to_8bit(level.apply(item.marked, seed=seed + k))
            subject.check_readable(attacked, f"{level.label} makes {item.name}")
            control = to_8bit(level.apply(item.clean, seed=seed + k)) if item.clean is not None else None
            _gather(rows[level.label], subject, item, attacked, control, clean_quality, k < examples)
        for level, model in model_levels:
            remarked = subject.remark(item, model)
            quality = (psnr([remarked], [item.clean]).item(), ssim([remarked], [item.clean]).item())
            _gather(rows[level.label], subject, item, remarked, item.clean, quality, k < examples)
    ordered = [("none", None), *((lv.label, lv) for lv in image_levels), *((lv.label, lv) for lv, _ in model_levels)]
    for label, level in ordered:
        readings = rows[label]
        head = ({"kind": "none", "attack": "none", "level": None, "parameter": ""} if level is None else
                {"kind": level.kind, "attack": level.attack.name, "level": level.value,
                 "parameter": level.attack.parameter})  # fmt: skip
        result.rows.append({"model": subject.name, **head, "label": label, **readings.row(subject, fpr)})
        result.examples[(subject.name, label)] = readings.examples
    bar.update(1 + len(levels))


def _gather(readings: _Readings, subject: NativeSubject, item: NativeImage, attacked: torch.Tensor,
            control: torch.Tensor | None, clean_quality: tuple[float, float] | None, example: bool,
            same: bool = False) -> None:  # fmt: skip
    """Read one attacked image (and its clean control) into a row's readings."""
    readings.read(subject, attacked)
    if control is not None:
        readings.read(subject, control, control=True)
    readings.expected.append(item.expected.float())
    if same:  # the unattacked row: the image against itself
        readings.psnr_attack.append(PSNR_CAP)
        readings.ssim_attack.append(1.0)
    elif attacked.shape != item.marked.shape:
        readings.resized = True
    else:
        readings.psnr_attack.append(psnr([attacked], [item.marked]).item())
        readings.ssim_attack.append(ssim([attacked], [item.marked]).item())
    if clean_quality is not None:
        readings.psnr_clean.append(clean_quality[0])
        readings.ssim_clean.append(clean_quality[1])
    if example:
        readings.examples.append(_thumbnail(attacked))
