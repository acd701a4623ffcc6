"""`ganprint codec train-anysize`: train an any-size codec (codec/anysize.py) on a folder of photos."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ..codec.anysize_train import AnySizeTrainOptions
from ..errors import GanprintError
from . import options as opt


D = AnySizeTrainOptions(data_dir="")  # the defaults shown by --help


@click.command("train-anysize")
@click.option("--data_dir", "--data-dir", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of training photos (any sizes, read recursively).")
@opt.output_dir(default="runs")
@click.option("--fingerprint-length", "--fingerprint_length", "fingerprint_length", type=click.IntRange(1, 4096),
              default=100, show_default=True, help="Bits per fingerprint.")
@click.option("--arch", type=click.Choice(["conv", "unet"]), default=D.arch, show_default=True,
              help="conv: a 32-px ganprint codec's layers run over 32-px tiles (can start from codec-32's weights "
              "with --init); unet: a lighter network that makes the residual at half the working resolution.")
@click.option("--channels", type=click.IntRange(min=8), default=D.channels, show_default=True, help="Network width.")
@click.option("--message-channels", type=click.IntRange(min=1), default=D.message_channels, show_default=True,
              help="Channels of the tiled message map.")
@click.option("--residual-rms", "residual_rms", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=D.residual_rms, show_default=True, help="Target residual RMS (PSNR ~ -20 log10 rms).")
@click.option("--start-rms", "start_rms", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=D.start_rms, show_default=True, help="Residual RMS at the start; lowered as accuracy allows.")
@click.option("--anneal-accuracy", type=click.FloatRange(0.5, 1), default=D.anneal_accuracy, show_default=True,
              help="Smoothed (attacked) bit accuracy that lowers the residual RMS one step.")
@click.option("--augment-ramp", type=click.IntRange(min=0), default=D.augment_ramp, show_default=True,
              help="Steps over which the attacks come in, once the clean bits are read.")
@click.option("--sync-weight", type=click.FloatRange(0), default=D.sync_weight, show_default=True,
              help="Weight of the loss that keeps readings at a wrong tile shift or scale unconfident.")
@click.option("--grey-probability", type=click.FloatRange(0, 1), default=D.grey_probability, show_default=True,
              help="Share of training images read as their greyscale copy (the channels' mean), so the residual "
              "also lives in luminance and greyscale images keep their fingerprint.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=D.lr, show_default=True, help="Adam learning rate.")
@click.option("--batch-size", "--batch_size", "batch_size", type=click.IntRange(min=1), default=D.batch_size,
              show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=D.steps, show_default=True, help="Total training steps.")
@click.option("--snapshot-every", type=click.IntRange(min=1), default=D.snapshot_every, show_default=True,
              help="Steps between snapshots, resume checkpoints and evaluations.")
@click.option("--init", default=None, metavar="NAME|PATH",
              help="Start from this any-size codec's weights (e.g. codec-any) instead of random ones: train it on.")
@opt.seed
@opt.device
@click.option("--resume", type=click.Path(exists=True, file_okay=False), default=None,
              help="Run folder to continue; its options are reused (--steps may extend it).")
@opt.quiet
def train_anysize(data_dir, output_dir, resume, quiet, steps, snapshot_every, **kwargs) -> None:
    """Train an any-size codec: photos cropped at many sizes, fingerprinted at a working resolution,
    attacked at native size (crops, resizes, rotations, JPEG/WebP, colour), read back.

    \b
    Examples:
      ganprint codec train-anysize --data_dir photos/ --output_dir runs --init codec-32-immunized
      ganprint codec train-anysize --resume runs/00000-codec-anysize-128w-100b
      ganprint codec train-anysize --resume runs/00000-codec-anysize-128w-100b --steps 8000
      ganprint codec train-anysize --data_dir photos/ --init codec-any --start-rms 0.01 --steps 4000

    The shipped codec-any's recipe: recipes/codec-any/recipe.sh.
    """
    from ..codec.anysize_train import train_anysize as train

    if resume is not None:
        options_path = Path(resume) / "options.json"
        if not options_path.is_file():
            raise GanprintError(f"{resume}: not a training run folder (no options.json)")
        try:
            saved = json.loads(options_path.read_text(encoding="utf-8"))
            names = {f.name for f in dataclasses.fields(AnySizeTrainOptions)}
            options = AnySizeTrainOptions(**{k: v for k, v in saved.items() if k in names})
        except (json.JSONDecodeError, TypeError) as exc:
            raise GanprintError(f"{options_path}: unreadable run options ({exc.__class__.__name__})") from None
        if steps != D.steps:
            options.steps = steps
    else:
        if data_dir is None:
            raise click.UsageError("--data_dir is required (unless --resume)")
        options = AnySizeTrainOptions(data_dir=data_dir, output_dir=output_dir, steps=steps,
                                      eval_every=snapshot_every, snapshot_every=snapshot_every, **kwargs)  # fmt: skip
    options.progress = not quiet
    run_dir = train(options, resume=resume)
    click.echo(f"run folder: {run_dir}\nfinal model: {run_dir / 'final'}")
