"""`ganprint fid`: the Frechet distance between a folder of generated images and real images."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import GanprintError
from . import options as opt


@click.command()
@click.argument("generated", metavar="GENERATED")
@click.option("--data", "--data-dir", "--data_dir", "data", required=True, metavar="PATH",
              help="Real images: a `ganprint dataset`, folder, zip, 'fashion-mnist', ...")
@click.option("--num-images", "--num_images", "num_images", type=click.IntRange(min=2), default=10000,
              show_default=True, help="Images taken from each set (a seeded random choice when a set has more).")
@click.option("--resolution", type=opt.ImageSide(8), default=None,
              help="Size both sets are brought to [default: the shorter side of the first generated image].")
@opt.fid_weights
@opt.batch_size
@opt.seed
@opt.device
@opt.json_result_output
@opt.json_result
@opt.quiet
def fid(generated, data, num_images, resolution, fid_weights, batch_size, seed, device, output, as_json, quiet) -> None:
    """FID of the images in GENERATED (a folder or zip, e.g. a model's outputs from any framework)
    against real images: what fingerprinting cost a model in sample quality, measured the same way
    for models trained here and elsewhere.

    \b
    Examples:
      ganprint fid gan_out/ --data celeba_30k.zip --fid-weights ~/pt_inception-2015-12-05-6726825d.pth
      ganprint fid generated-A/images --data fashion-mnist-32.zip --fid-weights stand-in --num-images 10000
    """
    from ..fid import fid_between_image_sets, image_set_resolution, load_feature_network
    from ..io import atomic_write_json

    if output is not None and Path(output).exists():
        raise GanprintError(f"{output} already exists; choose another --output")
    network = load_feature_network(fid_weights, device)
    resolution = resolution or image_set_resolution(generated)
    distance = fid_between_image_sets(generated, data, num_images, network, resolution=resolution,
                                      batch_size=batch_size, seed=seed, progress=not quiet)  # fmt: skip
    record = {"generated": str(generated), "data": str(data), "num_images": num_images, "resolution": resolution,
              "feature_network": network.name, "fid": distance}  # fmt: skip
    if output is not None:
        atomic_write_json(output, record)
    if as_json:
        click.echo(json.dumps(record))
    else:
        # docs/fid.md: a stand-in value is never called an FID.
        label = "Frechet distance" if network.name.startswith("stand-in") else "FID"
        note = "; relative comparisons only" if label != "FID" else ""
        click.echo(f"{label} {distance:.4f} ({num_images} images per set at {resolution}x{resolution}, "
                   f"{network.name}{note})")  # fmt: skip
