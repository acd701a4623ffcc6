"""`ganprint calibrate`: measure a decoder on clean images and store the thresholds that follow."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import options as opt


@click.command()
@click.option("--model", default=None, metavar="NAME|PATH",
              help="The decoder: a codec name or folder (or original *_decoder.pth), or a scalable network "
              "[default: codec-any; codec-32 with --image_resolution 32].")
@click.option("--method", type=click.Choice(["codec", "scalable"]), default="codec", show_default=True,
              help="Fingerprinting method of --model.")
@opt.data_dir()
@opt.fpr
@click.option("--unknown-fpr", "unknown_fpr", type=opt.Probability(), default=None,
              help="False-positive rate of the 'fingerprinted-unknown' verdict [default: --fpr, or 1/(n+1) "
              "when n clean images cannot show a rate that low].")
@click.option("--registry", "registry_location", default=None, metavar="DB",
              help="Also test the registered fingerprints of this method against the clean images.")
@click.option("--fingerprints", "n_fingerprints", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Random fingerprints each clean image is compared with for the empirical false-positive rate.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write the calibration [default: calibration.json beside the model's config.json].")
@click.option("--dry-run", is_flag=True, help="Report only; write nothing.")
@opt.overwrite
@opt.image_resolution
@opt.celeba
@opt.batch_size
@opt.strict
@opt.seed
@opt.device
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
@opt.quiet
def calibrate(model, method, data_dir, false_positive_rate, unknown_fpr, registry_location, n_fingerprints, output,
              dry_run, overwrite, image_resolution, celeba, batch_size, strict, seed, device, as_json,
              quiet) -> None:  # fmt: skip
    """Run a decoder over clean (not fingerprinted) images: report the per-bit bias, the correlation
    of the bits, the empirical false-positive rate at the threshold and the decoder's confidence,
    warn when the fair-coin p-value would be optimistic, and store calibration.json beside the model.
    `codec detect` and `attribute` then use its calibrated threshold and enable the
    'fingerprinted-unknown' verdict. Use clean images like those you will test (ideally 1000+).

    \b
    Examples:
      ganprint calibrate --model codec-32 --data_dir clean_photos/
      ganprint calibrate --model models/my-codec --data_dir fashion-mnist:test --registry fp.db
      ganprint calibrate --method scalable --model net/ --data_dir real_images.zip --output net.cal.json
    """
    from ..calibration import calibrate_decoder, calibration_path
    from ..decoders import load_decoder
    from ..errors import GanprintError
    from ..registry import Registry

    decoder = load_decoder(model, method, device, image_resolution)
    target = output or calibration_path(decoder)
    if target is None and not dry_run:
        raise click.UsageError("this decoder has no model folder; give --output")
    if target is not None and not dry_run and not overwrite and Path(target).exists():
        raise GanprintError(f"{target} already exists; pass --overwrite to replace it")  # before the slow part
    registered = None
    if registry_location:
        with Registry(registry_location) as reg:
            _, registered = reg.fingerprint_bits(method, decoder.fingerprint_length)
    cal = calibrate_decoder(
        decoder, data_dir, false_positive_rate, unknown_fpr, batch_size=batch_size, celeba=celeba, strict=strict,
        fingerprints=n_fingerprints, registered=registered, seed=seed, progress=not quiet,
    )  # fmt: skip
    if target is not None and not dry_run:
        cal.save(target, overwrite=overwrite)
    for warning in cal.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps({**cal.to_dict(), "path": None if dry_run else str(target)}))
        return
    e = cal.empirical
    bias = max(abs(q - 0.5) for q in cal.one_rate)
    click.echo(f"{cal.decoder}: {cal.images} clean images from {cal.source}, {cal.length} bits")
    click.echo(f"per-bit bias: max |P(1) - 0.5| = {bias:.3f}; fair-coin p-value optimism at its threshold: "
               f"{cal.optimism:.3g}x")  # fmt: skip
    click.echo(f"correlation: top eigenvalue {cal.correlation_eigenvalue:.2f} "
               f"(shuffled bits: {cal.correlation_eigenvalue_shuffled:.2f})")  # fmt: skip
    click.echo(f"threshold at FPR {cal.false_positive_rate:g}: {cal.binomial_threshold}/{cal.length} bits "
               f"(fair coins), {cal.calibrated_threshold}/{cal.length} (calibrated)")  # fmt: skip
    click.echo(f"empirical: {e['above_binomial_threshold']} of {e['comparisons']} clean comparisons pass the "
               f"fair-coin threshold, {e['above_calibrated_threshold']} the calibrated one "
               f"(95% upper bound on the rate {e['rate_upper_95_calibrated']:.2g})")  # fmt: skip
    q = cal.confidence_quantiles
    click.echo(f"confidence on clean images: median {q['0.5']:.3f}, max {q['1.0']:.3f}; 'fingerprinted-unknown' "
               f"above {cal.confidence_threshold:.3f} (false-positive rate <= {cal.unknown_false_positive_rate:.2g})")
    if not dry_run:
        click.echo(f"wrote {target}")
