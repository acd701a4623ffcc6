"""`ganprint codec train-anysize`: train an any-size codec (codec/anysize.py) on a folder of photos."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ..errors import GanprintError
from . import options as opt


def _defaults():
    from ..codec.anysize_train import AnySizeTrainOptions

    return {f.name: f.default for f in dataclasses.fields(AnySizeTrainOptions) if f.default is not dataclasses.MISSING}


@click.command("train-anysize")
@click.option("--data_dir", "--data-dir", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of training photos (any sizes, read recursively).")
@opt.output_dir(default="runs")
@click.option("--fingerprint-length", "--fingerprint_length", "fingerprint_length", type=click.IntRange(1, 4096),
              default=100, show_default=True, help="Bits per fingerprint.")
@click.option("--channels", type=click.IntRange(min=8), default=48, show_default=True, help="Network width.")
@click.option("--residual-rms", "residual_rms", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.0065, show_default=True, help="Target residual RMS (PSNR ~ -20 log10 rms).")
@click.option("--batch-size", "--batch_size", "batch_size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=6000, show_default=True, help="Total training steps.")
@click.option("--snapshot-every", type=click.IntRange(min=1), default=250, show_default=True,
              help="Steps between snapshots, resume checkpoints and evaluations.")
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
      ganprint codec train-anysize --data_dir photos/ --output_dir runs
      ganprint codec train-anysize --resume runs/00000-codec-anysize-128w-100b
      ganprint codec train-anysize --resume runs/00000-codec-anysize-128w-100b --steps 8000

    The shipped codec-any's recipe: recipes/codec-any/recipe.sh.
    """
    from ..codec.anysize_train import AnySizeTrainOptions, train_anysize as train

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
        if steps != _defaults()["steps"]:
            options.steps = steps
    else:
        if data_dir is None:
            raise click.UsageError("--data_dir is required (unless --resume)")
        options = AnySizeTrainOptions(data_dir=data_dir, output_dir=output_dir, steps=steps,
                                      eval_every=snapshot_every, snapshot_every=snapshot_every, **kwargs)  # fmt: skip
    options.progress = not quiet
    run_dir = train(options, resume=resume)
    click.echo(f"run folder: {run_dir}\nfinal model: {run_dir / 'final'}")
