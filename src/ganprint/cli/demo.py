"""`ganprint demo`: both fingerprinting methods end to end on built-in or generated images, in seconds."""

from __future__ import annotations

import click

from . import options as opt
from .scalable import DEFAULT_NETWORK as DEFAULT_SCALABLE_NETWORK


@click.command()
@click.option("--output-dir", "--output_dir", "output_dir", default="ganprint-demo", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the demo's images and pictures.")
@click.option("--anysize-model", "anysize_model", default="codec-any", show_default=True, metavar="NAME|PATH",
              help="Any-size codec for the first part (built-in photos at their native size).")
@click.option("--model", default="codec-32", show_default=True, metavar="NAME|PATH",
              help="Fixed-resolution codec for the second part (crops of the built-in photos).")
@click.option("--images", "count", type=click.IntRange(1, 64), default=16, show_default=True,
              help="How many built-in images to use.")
@click.option("--scalable-network", "scalable_network", default=DEFAULT_SCALABLE_NETWORK, show_default=True,
              metavar="NAME|PATH",
              help="Scalable-fingerprinting network (with its decoder) for the second part: a shipped name, a model "
              "folder or a training run folder. When it cannot be used, that part is skipped with one line saying why.")
@opt.seed
@opt.device
def demo(output_dir, anysize_model, model, count, scalable_network, seed, device) -> None:
    """Three parts. Any size: fingerprint two built-in photos (512x512, 600x400) at their native size,
    save them as PNG, read them back and detect the fingerprint, also after JPEG 75, halving and a crop
    to half the area; saves anysize-demo.png (100% crops: clean / fingerprinted / amplified residual).
    Codec at 32 px: fingerprint built-in photo crops, save them as PNG, read the PNGs back and detect
    the fingerprint; clean photos serve as controls. Prints bit accuracy, PSNR and a verdict per image
    and saves demo.png (clean / fingerprinted / amplified residual). Scalable fingerprinting: three
    fingerprinted models of the scalable network (fingerprints drawn from --seed) generate 8 images
    each; the PNGs are read back, decoded and attributed to the nearest of the three fingerprints.
    Prints a table per image and the attribution accuracy and saves scalable-demo.png.

    \b
    Examples:
      ganprint demo --output-dir ganprint-demo
      ganprint demo --seed 3 --scalable-network runs/00000-scalable-cpu32-32px-128b
    """
    from ..demo import run_demo

    run_demo(output_dir, model=model, count=count, seed=seed, device=device, echo=click.echo,
             scalable_network=scalable_network, anysize_model=anysize_model)  # fmt: skip
