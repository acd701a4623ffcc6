"""`ganprint transfer run`: fingerprint a dataset, train a GAN on it, and detect the fingerprint in
what the GAN generates (ICCV 2021's central claim, end to end)."""

from __future__ import annotations

import json

import click

from ..pretrained import CODEC_32
from . import options as opt


@click.group()
def transfer() -> None:
    """Fingerprint transfer: a GAN trained on fingerprinted images generates fingerprinted images.

    \b
    Examples:
      ganprint transfer run --data fashion-mnist:train --num-images 1000 --kimg 160 --output_dir transfer/
    """


@transfer.command()
@click.option("--data", "--data-dir", "--data_dir", "data", required=True, metavar="PATH",
              help="Training images: a folder, a .zip, an idx file or 'fashion-mnist[:train|:test]'.")
@opt.output_dir()
@click.option("--num-images", "--num_images", "num_images", type=click.IntRange(min=1), default=1000,
              show_default=True, help="Images to generate and test.")
@click.option("--kimg", type=click.FloatRange(min=0, min_open=True), default=160.0, show_default=True,
              help="GAN training length in thousands of images (cpu32 on Fashion-MNIST with codec-32: the "
              "fingerprint appears between 70 and 140 kimg; 160 kimg take about 25 minutes on one CPU thread; "
              "give 320 for image quality as close to a clean GAN's as the same training allows).")
@click.option("--fingerprint", default=None, metavar="BITS|HEX",
              help="The fingerprint for every training image [default: random bits drawn from --seed].")
@click.option("--codec", default=CODEC_32, show_default=True, metavar="NAME|PATH",
              help="Codec that embeds and detects: a shipped name or a folder with config.json + model.safetensors.")
@click.option("--preset", type=click.Choice(["cpu32", "cpu64"]), default="cpu32", show_default=True,
              help="GAN networks and training defaults (must match the codec's resolution).")
@click.option("--control-images", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Clean and fingerprinted real images scored as controls.")
@opt.fpr
@opt.batch_size
@opt.seed
@opt.device
@opt.overwrite
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@opt.quiet
def run(as_json, quiet, **kwargs) -> None:
    """Fingerprint every training image with ONE fingerprint, train a GAN on them, generate
    --num-images images and detect the fingerprint in them. Writes report.json, report.md and
    transfer.png (real / fingerprinted / generated) into --output_dir.

    \b
    The same in three steps (HEX: 25 hex digits for the 100-bit codec-32):
      ganprint codec embed --data_dir fashion-mnist:train --output_dir fp/ --fingerprint HEX
      ganprint gan train --data fp/fingerprinted_images --total-kimg 160 --output-dir runs/
      ganprint gan generate --network runs/00000-gan-cpu32-32px --num-images 1000 --output-dir gen/
      ganprint codec detect --data_dir gen/ --output_dir det/ --expected HEX

    \b
    Examples:
      ganprint transfer run --data fashion-mnist:train --num-images 1000 --kimg 160 --output_dir transfer/
      ganprint transfer run --data photos/ --fingerprint 0x0123456789abcdef012345678 --output_dir t/
    """
    from ..transfer import TransferOptions, run_transfer

    report = run_transfer(TransferOptions(**kwargs, progress=not quiet))
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(report["verdict"])
    for key, s in report["sets"].items():
        click.echo(f"  {key:<19} {s['images']:>6} images  mean bit accuracy {s['mean_bit_accuracy']:.4f}  "
                   f"consensus p {s['consensus_p_value']:.3g}  detected {s['detected']}/{s['images']}")  # fmt: skip
    click.echo(f"report: {kwargs['output_dir']}/report.md")
