"""`ganprint demo`: the whole artificial-fingerprinting loop on the built-in images, in seconds."""

from __future__ import annotations

import click

from . import options as opt


@click.command()
@click.option("--output-dir", "--output_dir", "output_dir", default="ganprint-demo", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the demo's images and picture.")
@click.option("--model", default=None, metavar="NAME|PATH", help="Codec to use [default: the shipped codec].")
@click.option("--images", "count", type=click.IntRange(1, 64), default=16, show_default=True,
              help="How many built-in images to use.")
@opt.seed
@opt.device
def demo(output_dir, model, count, seed, device) -> None:
    """Fingerprint built-in photos, save them as PNG, read the PNGs back and detect the fingerprint;
    clean photos serve as controls. Prints bit accuracy, PSNR and a verdict per image and saves a
    picture (clean / fingerprinted / amplified residual).

    \b
    Example:
      ganprint demo --output-dir ganprint-demo
    """
    from ..demo import run_demo

    run_demo(output_dir, model=model, count=count, seed=seed, device=device, echo=click.echo)
