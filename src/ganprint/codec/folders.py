"""Embedding into and detecting from whole image collections, streamed a batch at a time.

Files written (the original tools' formats, plus a report):
    <output_dir>/fingerprinted_images/<name>.png   fingerprinted images (embed)
    <output_dir>/embedded_fingerprints.txt         `<name>.png <bits>` per image, sorted (embed)
    <output_dir>/detected_fingerprints.txt         same format, what the decoder read (detect)
    <output_dir>/detection_report.csv              per-image accuracy, p-value, verdict (detect, with
                                                   an expected fingerprint)
Memory stays flat in the number of images: images are processed in name order and the text files
are written line by line to a temporary file that replaces the target at the end.

An any-size codec (`codec.any_size`) takes every image at its own size and mode, one at a time:
`fingerprinted_images/<name>.<png|jpg|webp>` keep the input's size, mode, alpha and metadata
(ganprint.image_files); images outside the codec's side limits are skipped like unreadable ones.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pathlib import PurePosixPath
from typing import Iterator

import torch
from tqdm import tqdm

from ..data import ImageSource, iterate_batches, open_source, tensor_to_pil, unique_output_names
from ..detection import DEFAULT_FALSE_POSITIVE_RATE, DetectionResult, NullModel
from ..errors import BadImageError, GanprintError
from ..fingerprints import bits_to_str, parse_fingerprint, read_fingerprint_file
from ..image_files import DEFAULT_QUALITY, OUTPUT_FORMATS, ImageFile, read_source_image, write_image_file
from ..image_modes import marked_like_rgb16, rgb16_for_marking, rgb_for_marking
from ..io import atomic_path, staging_dir
from ..stats import neg_log10_p_value, p_value
from ..visualize import save_png
from .codec import FingerprintCodec

EMBEDDED_FILE = "embedded_fingerprints.txt"
DETECTED_FILE = "detected_fingerprints.txt"
REPORT_FILE = "detection_report.csv"
IMAGES_DIR = "fingerprinted_images"


@dataclass
class EmbedSummary:
    images: int
    output_dir: Path
    fingerprint: str | None  # the shared fingerprint, when all images got the same one


@dataclass
class DetectSummary:
    images: int
    output_dir: Path
    mean_bit_accuracy: float | None = None  # against the expected fingerprints
    pooled_p_value: float | None = None  # all matching bits over all images, one binomial test
    pooled_neg_log10_p: float | None = None
    # majority vote per bit position (does the image set agree with its fingerprints at more than half
    # of the positions?), binomial over the L positions: valid even when the decoder reads the same
    # bits on most images of the set (ganprint.transfer explains why the pooled test is not)
    consensus_matches: int | None = None
    consensus_p_value: float | None = None
    detected: int = 0  # images whose own p-value passes the false-positive rate
    undecided: int = 0  # images too flat for a verdict (ganprint.texture); left out of the set's statistics
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE
    per_image: list[dict] = field(default_factory=list)  # kept only for small sets (<= 1000 images)


def _ordered(source, suffix: str = ".png") -> tuple[list[int], dict[str, str]]:
    """Source indices in output-name order, and the output name of each source name."""
    out_names = unique_output_names(source.names, suffix)
    mapping = dict(zip(source.names, out_names))
    order = sorted(range(len(source)), key=lambda i: out_names[i])
    return order, mapping


def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise GanprintError(f"{path} already exists; choose another --output_dir or pass --overwrite")


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` in place of `target` (which may exist): two renames, then clean up."""
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}-old-{os.getpid()}")
        target.rename(backup)
    new.rename(target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def embed_folder(
    codec: FingerprintCodec,
    data: str | os.PathLike,
    output_dir: str | os.PathLike,
    fingerprint: str | torch.Tensor | None = None,
    identical: bool = False,
    batch_size: int = 64,
    seed: int = 0,
    celeba: bool = False,
    strict: bool = False,
    strength: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_bad: Callable[[str, str], None] | None = None,
    refine: int | None = None,
    image_format: str = "png",
    quality: int = DEFAULT_QUALITY,
) -> EmbedSummary:
    """Fingerprint every image of `data` (folder, zip, idx, ...) and write PNGs plus the bits file.

    `fingerprint` (bits or hex) is used for every image; else `identical` draws one random
    fingerprint for all, and otherwise every image gets its own; random draws follow `seed` in
    output-name order. `refine`: steps of informed embedding per image (codec/refine.py; any-size
    codecs: codec/anysize_refine.py, and None refines greyscale images only). With
    `overwrite`, the earlier `fingerprinted_images/` is replaced as a whole once the run has
    succeeded, so the folder always matches the bits file. An any-size codec writes each image at
    its own size and mode as `image_format` (png, jpeg, webp; `quality` for the lossy two).
    """
    any_size = getattr(codec, "any_size", False)
    if codec.encoder is None:
        raise GanprintError("this model has no encoder; give an encoder or a full codec")
    if refine and codec.decoder is None:
        raise GanprintError("--refine-steps needs the codec's decoder; give a full codec, not an encoder alone")
    if image_format not in OUTPUT_FORMATS:
        raise GanprintError(f"unknown image format {image_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    if any_size:
        _check_native_options(celeba)
    elif image_format != "png":
        raise GanprintError(
            f"--format {image_format} needs an any-size codec; {codec.config.resolution}x{codec.config.resolution} "
            "codecs write PNG only"
        )
    length = codec.config.fingerprint_length
    source = open_source(data)
    out = Path(output_dir)
    _refuse_overwrite(out / EMBEDDED_FILE, overwrite)

    g = torch.Generator().manual_seed(seed)
    shared = None
    if fingerprint is not None:
        shared = parse_fingerprint(fingerprint, length) if isinstance(fingerprint, str) else fingerprint.float()
        if shared.shape != (length,):
            raise GanprintError(f"fingerprint has {shared.numel()} bits; this model needs {length}")
    elif identical:
        shared = torch.randint(0, 2, (length,), generator=g).float()
    images_dir = out / IMAGES_DIR
    out.mkdir(parents=True, exist_ok=True)
    # PNGs go to a staging folder that replaces fingerprinted_images/ only when every image is done,
    # so a failed or interrupted run (also with --overwrite) leaves the earlier output untouched.
    staging = staging_dir(out, prefix=f".{IMAGES_DIR}-")
    try:
        order, names = _ordered(source, OUTPUT_FORMATS[image_format] if any_size else ".png")
        count = 0
        bar = tqdm(total=len(source), desc="embed", unit="img", disable=not progress, dynamic_ncols=True)
        with atomic_path(out / EMBEDDED_FILE) as tmp, open(tmp, "w", encoding="utf-8") as lines:
            if any_size:
                count = _embed_native(codec, source, order, names, staging, lines, shared, g, strength, refine,
                                      image_format, quality, strict, on_bad, bar)  # fmt: skip
            else:
                for batch_names, images in iterate_batches(
                    source, codec.config.resolution, batch_size, celeba=celeba, strict=strict, order=order,
                    on_bad=on_bad,
                ):  # fmt: skip
                    n = images.shape[0]
                    bits = shared.expand(n, -1) if shared is not None else torch.randint(0, 2, (n, length), generator=g).float()
                    marked = codec.embed(images, bits, batch_size=batch_size, strength=strength, refine=refine or 0).cpu()
                    for name, image, b in zip(batch_names, marked, bits):
                        save_png(tensor_to_pil(image), staging / names[name])
                        lines.write(f"{names[name]} {bits_to_str(b)}\n")
                    count += n
                    bar.update(n)
            bar.close()
            lines.flush()
            _replace_dir(staging, images_dir)  # just before the bits file is committed
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return EmbedSummary(count, out, bits_to_str(shared) if shared is not None else None)


def _check_native_options(celeba: bool) -> None:
    if celeba:
        raise GanprintError("--use_celeba_preprocessing is for fixed-resolution codecs; this codec reads images at "
                            "their own size (choose e.g. --model codec-32 for the original preprocessing)")  # fmt: skip


def _warn_skipped(name: str, message: str) -> None:
    print(f"warning: skipped {message}", file=sys.stderr)


def _native_images(
    codec, source: ImageSource, order: list[int], strict: bool, on_bad, bar
) -> Iterator[tuple[int, ImageFile]]:
    """(source index, ImageFile) of each readable image in `order`, one at a time, its size checked
    against the codec's limits; a bad one is an error with `strict`, else reported and skipped."""
    from .anysize import check_image_size  # the any-size codec's module; fixed-size runs never load it

    good = 0
    for i in order:
        try:
            f = read_source_image(source, i)
            try:
                check_image_size(f.image.height, f.image.width, codec.config, source.location(i))
            except GanprintError as e:
                raise BadImageError(str(e)) from None
        except BadImageError as e:
            if strict:
                raise
            (on_bad or _warn_skipped)(source.names[i], str(e))
            bar.update(1)
            continue
        good += 1
        yield i, f
    if good == 0:
        raise GanprintError(f"{source.spec}: none of the {len(source)} images could be read")


def _embed_native(codec, source, order, names, staging, lines, shared, g, strength, refine, image_format, quality,
                  strict, on_bad, bar) -> int:  # fmt: skip
    """embed_folder for an any-size codec: each image at its own size and mode, written with its metadata."""
    count = 0
    for i, f in _native_images(codec, source, order, strict, on_bad, bar):
        name = source.names[i]
        bits = shared if shared is not None else torch.randint(0, 2, (codec.config.fingerprint_length,), generator=g).float()
        if f.deep is not None:  # 16-bit colour: marked as a tensor, written at 16 bits
            marked = marked_like_rgb16(f.deep, codec.embed(rgb16_for_marking(f.deep), bits, strength=strength,
                                                                 refine=refine))
        else:
            marked = codec.embed(f.image, bits, strength=strength, refine=refine)
        try:
            write_image_file(staging / names[name], marked, f, image_format, quality, label=source.location(i))
        except BadImageError as e:  # e.g. alpha for a JPEG
            if strict:
                raise
            (on_bad or _warn_skipped)(name, str(e))
            bar.update(1)
            continue
        lines.write(f"{names[name]} {bits_to_str(bits)}\n")
        count += 1
        bar.update(1)
    return count


def _read_native(codec, source, order, strict, on_bad, bar) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """detect_folder's batches for an any-size codec: one image at a time at its own size, as
    ([name], logits (1, L), the image at the decoder's working resolution for the texture check)."""
    from .anysize import to_working

    for i, f in _native_images(codec, source, order, strict, on_bad, bar):
        x = rgb16_for_marking(f.deep) if f.deep is not None else rgb_for_marking(f.image)
        logits = codec.decode_logits([x])
        yield [source.names[i]], logits, to_working(x.unsqueeze(0), codec.config.working_resolution)


def _native_names(names: list[str]) -> dict[str, str]:
    """Flat output names that keep each file's own extension (`sub/x.jpg` -> `sub__x.jpg`), so detecting
    fingerprinted_images/ of any format finds the names of embedded_fingerprints.txt."""
    stems = unique_output_names(names, suffix="")
    return {n: stem + PurePosixPath(n).suffix for n, stem in zip(names, stems)}


def _expected_lookup(expected, length: int) -> Callable[[str], torch.Tensor | None]:
    """name -> expected bits, from a fingerprint string/tensor (all images) or an embed output file."""
    if expected is None:
        return lambda name: None
    if isinstance(expected, torch.Tensor):
        return lambda name: expected
    path = Path(expected)
    if path.is_dir():
        path = path / EMBEDDED_FILE
    if path.is_file():
        table = read_fingerprint_file(path)
        first = next(iter(table.values()))
        if first.numel() != length:
            raise GanprintError(f"{path}: fingerprints have {first.numel()} bits; the decoder reads {length}")
        return lambda name: table.get(name)
    bits = parse_fingerprint(str(expected), length)
    return lambda name: bits


def detect_folder(
    codec: FingerprintCodec,
    data: str | os.PathLike,
    output_dir: str | os.PathLike,
    expected: str | os.PathLike | torch.Tensor | None = None,
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
    batch_size: int = 64,
    celeba: bool = False,
    strict: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_bad: Callable[[str, str], None] | None = None,
    null: NullModel | None = None,
) -> DetectSummary:
    """Decode every image of `data`; with `expected` (bits, hex, or an embedded_fingerprints.txt or
    its folder) also score each image and the whole set. Per-image p-values follow `null` (default
    fair coins; a calibrated one from ganprint.calibration); the pooled test stays binomial. An any-size
    codec reads each image at its own size; names keep their extension (`sub/x.jpg` -> `sub__x.jpg`)."""
    any_size = getattr(codec, "any_size", False)
    if codec.decoder is None:
        raise GanprintError("this model has no decoder; give a decoder or a full codec")
    if any_size:
        _check_native_options(celeba)
    length = codec.config.fingerprint_length
    null = null or NullModel.fair(length)
    threshold = null.threshold(false_positive_rate)
    lookup = _expected_lookup(expected, length)
    source = open_source(data)
    out = Path(output_dir)
    _refuse_overwrite(out / DETECTED_FILE, overwrite)
    out.mkdir(parents=True, exist_ok=True)

    if any_size:
        names = _native_names(source.names)
        order = sorted(range(len(source)), key=lambda i: names[source.names[i]])
    else:
        order, names = _ordered(source)
    summary = DetectSummary(0, out, false_positive_rate=false_positive_rate)
    matches_total = bits_total = 0
    agreeing = torch.zeros(length, dtype=torch.long)  # per bit position: images whose bit matches
    unmatched: list[str] = []
    bar = tqdm(total=len(source), desc="detect", unit="img", disable=not progress, dynamic_ncols=True)
    with atomic_path(out / DETECTED_FILE) as tmp, open(tmp, "w", encoding="utf-8") as lines, atomic_path(
        out / REPORT_FILE
    ) as tmp_report, open(tmp_report, "w", encoding="utf-8", newline="") as report_file:
        report = csv.writer(report_file)
        report.writerow(["name", "bit_accuracy", "p_value", "neg_log10_p", "detected", "detected_bits"])
        if any_size:
            batches = _read_native(codec, source, order, strict, on_bad, bar)
        else:
            batches = (
                (batch_names, codec.decode_logits(images, batch_size), images)
                for batch_names, images in iterate_batches(
                    source, codec.config.resolution, batch_size, celeba=celeba, strict=strict, order=order, on_bad=on_bad
                )
            )
        for batch_names, logits, images in batches:
            result = DetectionResult.from_logits(logits, None, false_positive_rate, null, images=images)
            for name, bits, enough in zip(batch_names, result.bits, result.enough_signal):
                out_name = names[name]
                lines.write(f"{out_name} {bits_to_str(bits)}\n")
                want = lookup(out_name)
                if want is None:
                    if expected is not None:
                        unmatched.append(out_name)
                    continue
                if not enough:  # a flat image's bits are no evidence either way
                    summary.undecided += 1
                    report.writerow([out_name, "", "", "", "not-enough-signal", bits_to_str(bits)])
                    continue
                agree = (bits > 0.5) == (want > 0.5)
                agreeing += agree.long()
                k = int(agree.sum())
                matches_total, bits_total = matches_total + k, bits_total + length
                p = null.p_value(k)
                hit = k >= threshold
                summary.detected += hit
                row = {"name": out_name, "bit_accuracy": k / length, "p_value": p,
                       "neg_log10_p": null.neg_log10_p(k), "detected": hit}  # fmt: skip
                report.writerow([*row.values(), bits_to_str(bits)])
                if len(summary.per_image) < 1000:
                    summary.per_image.append(row)
            summary.images += len(batch_names)
            bar.update(len(batch_names))
        bar.close()
    if expected is None:
        (out / REPORT_FILE).unlink(missing_ok=True)
    if unmatched:
        # stderr: stdout may carry machine-read output (--json)
        print(f"warning: {len(unmatched)} images have no expected fingerprint (e.g. {unmatched[0]})", file=sys.stderr)
    if bits_total:
        summary.mean_bit_accuracy = matches_total / bits_total
        summary.pooled_p_value = p_value(matches_total, bits_total)
        summary.pooled_neg_log10_p = neg_log10_p_value(matches_total, bits_total)
        summary.consensus_matches = int((2 * agreeing > bits_total // length).sum())  # a tie is no match
        summary.consensus_p_value = p_value(summary.consensus_matches, length)
    return summary
