"""`ganprint attribute`: which registered model made each image, with a verdict users can trust.

Exit codes: 0 at least one image was attributed or found fingerprinted; 3 nothing was detected (every
image "not-fingerprinted" or "not-enough-signal"); 1 an error; 2 a usage error.
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import click

from ..data import IMAGE_EXTENSIONS, ImageSource, load_image, open_source
from ..errors import GanprintError
from . import options as opt
from .registry import registry_option, timeout_option

EXIT_NOTHING_DETECTED = 3


class _ImageFiles(ImageSource):
    """Image files named one by one on the command line."""

    def __init__(self, paths: list[str]):
        self.spec, self.names = "files", paths

    def location(self, i: int) -> str:
        return self.names[i]

    def image(self, i: int):
        return load_image(self.names[i])


def _sources(paths: tuple[str, ...]) -> list[tuple[str | None, ImageSource]]:
    """(prefix for names, source) per argument; loose image files are gathered into one source."""
    files = [p for p in paths if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS)]
    out: list[tuple[str | None, ImageSource]] = [(None, _ImageFiles(files))] if files else []
    for p in paths:
        if p not in files:
            out.append((p, open_source(p)))
    return out


def _file_is_palette(source: ImageSource, index: dict[str, int], names: list[str], j: int) -> bool:
    """Whether image j of a batch is palette-quantized as read from its file (resizing mixes colours)."""
    from ..texture import is_palette_image

    try:
        return is_palette_image(source.image(index[names[j]]))
    except GanprintError:  # it was read a moment ago; if it cannot be now, it is not known to be one
        return False


def _row(r) -> str:
    model = r.model or (f"({r.nearest})" if r.nearest else "-")
    distance = "-" if r.distance is None else str(r.distance)
    return f"{r.verdict:<21} {model:<24} {distance:>4} {r.neg_log10_corrected_p:>8.1f} {r.confidence:>6.3f}  {r.name}"


@click.command()
@registry_option
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--model", default=None, metavar="NAME|PATH",
              help="The decoder: a codec name or folder (or original *_decoder.pth), or a scalable network "
              "[default: codec-any; codec-32 with --image_resolution 32].")
@click.option("--method", type=click.Choice(["codec", "scalable"]), default="codec", show_default=True,
              help="Fingerprinting method of --model; only registered fingerprints of this method are compared.")
@opt.fpr
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="Calibration file [default: calibration.json beside the model, if present].")
@click.option("--no-calibration", is_flag=True, help="Ignore any calibration: fair-coin p-values only.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="One JSON object per image instead of a table.")
@opt.image_resolution
@opt.celeba
@opt.batch_size
@opt.strict
@opt.follow_links
@opt.device
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Matching threads [default: all cores].")
@timeout_option
@opt.quiet
def attribute(location, paths, model, method, false_positive_rate, calibration, no_calibration, as_jsonl,
              image_resolution, celeba, batch_size, strict, device, threads, timeout, quiet) -> None:  # fmt: skip
    """Attribute images to registered models: decode each image's fingerprint, find the nearest
    registered fingerprint by Hamming distance, correct its p-value for the number of registered
    fingerprints (Bonferroni), and give a verdict: attributed (to one model), fingerprinted-unknown,
    or not-fingerprinted; a flat image (almost no texture) gets not-enough-signal instead. PATH: image
    files, folders (recursive), .zip files.

    \b
    Exit codes: 0 something was attributed or detected; 3 nothing detected; 1 error; 2 usage error.
    Table columns: verdict, model (or the nearest in parentheses), Hamming distance, -log10 of the
    corrected p-value, decoder confidence, image. See docs/attribution.md.

    \b
    Examples:
      ganprint attribute --registry fp.db generated/
      ganprint attribute --registry fp.db --jsonl --fpr 1e-9 a.png b.png more/ > verdicts.jsonl
      ganprint attribute --registry fp.db --method scalable --model net/ samples.zip
    """
    from ..attribution import ATTRIBUTED, NOT_ENOUGH_SIGNAL, UNKNOWN, Attributor, summarize
    from ..calibration import load_calibration
    from ..decoders import load_decoder
    from ..registry import Registry

    if no_calibration and calibration:
        raise click.UsageError("give --calibration or --no-calibration, not both")
    if celeba and image_resolution not in (None, 128):
        raise GanprintError("--use_celeba_preprocessing needs --image_resolution 128")
    with Registry(location, timeout=timeout) as reg:  # before the model: a wrong registry fails fast
        sources = _sources(paths)
        decoder = load_decoder(model, method, device, image_resolution)
        cal = None if no_calibration else load_calibration(decoder, calibration)
        attributor = Attributor.from_registry(
            reg, method, decoder.fingerprint_length, false_positive_rate=false_positive_rate,
            null=cal.null_model() if cal else None, confidence_threshold=cal.confidence_threshold if cal else None,
            threads=threads,
        )  # fmt: skip
    n, length = attributor.registry_size, decoder.fingerprint_length
    if n == 0:
        click.echo(f"warning: {location} holds no {length}-bit {method} fingerprints; nothing can be attributed",
                   err=True)  # fmt: skip
    if not quiet:
        null = attributor.null.description
        click.echo(
            f"{decoder.name}: {length} bits; {n} registered {method} fingerprints; attributed at corrected "
            f"p <= {false_positive_rate:g} (within {attributor.decision_radius} bits); null: {null}"
            + ("" if cal else "; uncalibrated (see 'ganprint calibrate')"),
            err=True,
        )  # fmt: skip
        if cal:
            click.echo(
                f"fingerprinted-unknown: confidence above {cal.confidence_threshold:.3f}, false-positive rate <= "
                f"{cal.unknown_false_positive_rate:.2g} for images like the {cal.images} calibration images "
                f"({cal.source})",
                err=True,
            )  # fmt: skip
    if not as_jsonl:
        click.echo(f"{'verdict':<21} {'model':<24} {'dist':>4} {'-log10p':>8} {'conf':>6}  image")

    from tqdm import tqdm

    total = sum(len(s) for _, s in sources)
    results = []
    bar = tqdm(total=total, desc="attribute", unit="img", disable=quiet, dynamic_ncols=True)
    for prefix, source in sources:
        index = {name: i for i, name in enumerate(source.names)}
        for names, logits, images in decoder.read_source(source, batch_size, celeba=celeba, strict=strict):
            shown = [str(Path(prefix) / n) if prefix and source.spec != "samples" else n for n in names]
            batch = attributor.attribute_logits(logits, shown, images=images,
                                                is_palette=partial(_file_is_palette, source, index, names))  # fmt: skip
            for r in batch:
                click.echo(json.dumps(r.to_json()) if as_jsonl else _row(r))
            results.extend(batch)
            bar.update(len(names))
    bar.close()
    counts = summarize(results)
    click.echo(
        f"{len(results)} images: {counts[ATTRIBUTED]} attributed, {counts['fingerprinted-unknown']} "
        f"fingerprinted-unknown, {counts['not-fingerprinted']} not-fingerprinted"
        + (f", {counts[NOT_ENOUGH_SIGNAL]} not enough signal to decide" if counts[NOT_ENOUGH_SIGNAL] else ""),
        err=True,
    )
    if counts[ATTRIBUTED] + counts[UNKNOWN] == 0:
        sys.exit(EXIT_NOTHING_DETECTED)  # SystemExit: click's non-standalone mode would swallow ctx.exit(3)
