"""Options shared by several commands; each accepts the original tools' underscore spelling too."""

from __future__ import annotations

import dataclasses
import signal
from typing import Callable

import click

from ..detection import DEFAULT_FALSE_POSITIVE_RATE
from ..errors import GanprintError
from ..limits import MAX_RESOLUTION, check_resolution


class Probability(click.ParamType):
    """A rate in (0, 1]: NaN, 0, negative numbers and numbers above 1 are usage errors (click's
    FloatRange lets NaN through, and a NaN rate would silently never detect anything)."""

    name = "rate"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float) and 0 < value <= 1:
            return value
        try:
            rate = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not 0 < rate <= 1:  # also false for NaN
            self.fail(f"{value!r} is not a rate in (0, 1] (e.g. 1e-6)", param, ctx)
        return rate


class ImageSide(click.ParamType):
    """A side in pixels, from `minimum` up to ganprint.limits.MAX_RESOLUTION: refused before anything
    is allocated."""

    name = "pixels"

    def __init__(self, minimum: int = 1):
        self.minimum = minimum

    def convert(self, value, param, ctx) -> int:
        try:
            side = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number of pixels", param, ctx)
        if side < self.minimum:
            self.fail(f"{side} is below the minimum of {self.minimum} pixels", param, ctx)
        try:
            return check_resolution(side, param.opts[0] if param is not None else "resolution")
        except GanprintError as exc:
            self.fail(str(exc), param, ctx)


def _set_follow_links(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    from ..data import set_follow_links

    set_follow_links(value)


follow_links = click.option(
    "--follow-links", is_flag=True, expose_value=False, callback=_set_follow_links,
    help="Also read symlinks in input folders that lead outside them (skipped with a warning by default).",
)  # fmt: skip


def data_dir(required: bool = True):
    """--data_dir and --follow-links (which applies to the folders read)."""
    option = click.option(
        "--data-dir", "--data_dir", "data_dir", required=required, metavar="PATH",
        help="Images: a folder (read recursively), a .zip, an idx file, 'fashion-mnist[:train|:test]' or "
        "'samples' (the built-in set).",
    )  # fmt: skip
    return lambda f: option(follow_links(f))


def output_dir(default: str | None = None):
    # No `default=None` for the required form: click >= 8.3 takes an explicit None as a given default
    # and would no longer report the option as missing.
    given = {"default": default, "show_default": True} if default is not None else {"required": True}
    return click.option(
        "--output-dir", "--output_dir", "output_dir", type=click.Path(file_okay=False), help="Folder for the outputs.",
        **given,
    )  # fmt: skip


image_resolution = click.option(
    "--image-resolution", "--image_resolution", "image_resolution", type=ImageSide(), default=None,
    help="Resolution the images are brought to; must match the model's (default: the model's).",
)  # fmt: skip
celeba = click.option(
    "--use-celeba-preprocessing", "--use_celeba_preprocessing", "celeba", is_flag=True,
    help="CelebA aligned images: crop the central 148x148, then resize to 128.",
)  # fmt: skip
batch_size = click.option(
    "--batch-size", "--batch_size", "batch_size", type=click.IntRange(min=1), default=64, show_default=True,
    help="Images per batch.",
)  # fmt: skip
strict = click.option("--strict", is_flag=True, help="Stop at the first unreadable image instead of skipping it.")
overwrite = click.option("--overwrite", is_flag=True, help="Replace outputs that already exist in --output_dir.")
device = click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda or cuda:N."
)
seed = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
fpr = click.option(
    "--fpr", "false_positive_rate", type=Probability(), show_default=True,
    default=DEFAULT_FALSE_POSITIVE_RATE,
    help="False-positive rate: an image is 'detected' when its p-value is at most this.",
)  # fmt: skip
fid_weights = click.option(
    "--fid-weights", default=None, metavar="PATH|stand-in[:SEED]",
    help="FID Inception weights (pt_inception-2015-12-05-6726825d.pth) [default: pytorch-fid's cache]; "
    "'stand-in' for the project's stand-in network (relative comparisons only).",
)  # fmt: skip
json_result_output = click.option(
    "--output", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON here."
)
json_result = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
noise_mode = click.option(
    "--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True,
    help="const: the network's stored noise maps; random: drawn from each image's seed.",
)  # fmt: skip


augment = click.option(
    "--augment", default=None, metavar="SPEC",
    help="Immunized training: perturbations between the fingerprinted image and the decoder, 'default' "
    "(noise, blur, jpeg, crop, brightness, contrast, saturation) or a list like 'noise=0.1,jpeg=40@3,crop' "
    "(name=maximum@weight: weight 3 draws JPEG three times as often as the others; see docs/robustness.md).",
)  # fmt: skip
augment_ramp = click.option(
    "--augment-ramp", "augment_ramp", type=click.IntRange(min=0), default=1000, show_default=True,
    help="Training steps over which the perturbation strength grows from 0 to full.",
)  # fmt: skip


def detect_options(f):
    """The options every `... detect` command shares after its model and input options, in this order:
    --expected, --fpr, --batch-size, --strict, --overwrite, --device, --json (as_json), --quiet."""
    for option in reversed([
        click.option("--expected", default=None, metavar="BITS|HEX|FILE",
                     help="Expected fingerprint, or an embedded_fingerprints.txt (or its folder) to compare per image."),
        fpr,
        batch_size,
        strict,
        overwrite,
        device,
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
        quiet,
    ]):  # fmt: skip
        f = option(f)
    return f


# ------------------------------------------------------------------ StyleGAN2-style training commands


def gan_training_options(*resume_aliases: str):
    """The options of `gan train` and `scalable train` that set the loop (stylegan.training.TrainingOptions),
    after the command's own; `resume_aliases`: further spellings of --resume."""

    def decorate(f):
        for option in reversed([
            click.option("--gamma", type=click.FloatRange(min=0), default=None,
                         help="R1 weight [default: the preset's]."),
            click.option("--r1-interval", type=click.IntRange(min=0), default=16, show_default=True,
                         help="Steps between lazy R1 penalties (0: none)."),
            click.option("--total-kimg", "--total_kimg", "total_kimg", type=click.FloatRange(min=0, min_open=True),
                         default=None, help="Training length in thousands of images [default: the preset's; may grow "
                         "on --resume]."),
            click.option("--batch", "--batch-size", "--batch_size", "batch_size", type=click.IntRange(min=1),
                         default=None, help="Images per step over all processes [default: the preset's, 16]."),
            click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                         help="Adam learning rate [default: 0.002]."),
            click.option("--ema-kimg", type=click.FloatRange(min=0, min_open=True), default=None,
                         help="Half-life of the generator's moving average [default: the preset's]."),
            click.option("--ema-rampup", type=click.FloatRange(min=0), default=None,
                         help="Cap the half-life at this share of the images seen (0: off) [default: the preset's]."),
            click.option("--mirror-augment", "--mirror_augment", "mirror_augment", type=click.BOOL, default=False,
                         is_flag=False, flag_value=True, show_default=True, help="Mirror training images at random."),
            click.option("--tick-kimg", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                         help="kimg between lines of stats.jsonl."),
            click.option("--snapshot-kimg", type=click.FloatRange(min=0), default=50.0, show_default=True,
                         help="kimg between snapshots, grids and resume checkpoints (0: at the end only)."),
            seed,
            click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True,
                         help="Data loader processes."),
            device,
            strict,
            click.option("--resume", *resume_aliases, "resume", type=click.Path(file_okay=False), default=None,
                         help="Run folder to continue exactly where its checkpoint left off (its options are kept)."),
            quiet,
        ]):  # fmt: skip
            f = option(f)
        return f

    return decorate


def training_run_options(ctx: click.Context, kwargs: dict, resume: str | None, quiet: bool, options_class,
                         load_run_options: Callable, fixed_on_resume: tuple[str, ...],
                         normalize: Callable[[str, object], object] = lambda key, value: value):  # fmt: skip
    """The options of a `... train` command: a new run's from the command line; a resumed run's from
    its options.json, where options given again must keep their value if they are in
    `fixed_on_resume` (compared after `normalize(key, value)`) and may change otherwise."""
    given = {k for k in kwargs if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    if resume is None:
        if kwargs["data"] is None:
            raise click.UsageError("--data is required (unless --resume)")
        return options_class(**kwargs, progress=not quiet)
    options = load_run_options(resume)
    resolved = options.resolved()
    for key in sorted(given & set(fixed_on_resume)):
        old, new = getattr(resolved, key), normalize(key, kwargs[key])
        if new != old:
            raise GanprintError(f"{resume}: the run was trained with {key.replace('_', '-')} {old}, not {new}; "
                                "a resumed run keeps its options")  # fmt: skip
    changes = {k: kwargs[k] for k in given - set(fixed_on_resume) - {"output_dir"}}
    return dataclasses.replace(options, **changes, progress=not quiet)


def run_training(train: Callable, options, resume: str | None) -> None:
    """train(options, resume, should_stop) with Ctrl-C asking it to stop after the current step (with a
    resume checkpoint; a second Ctrl-C aborts at once); then the run folder and its latest snapshot."""
    stop = {"requested": False}

    def on_interrupt(signum, frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        click.echo("\nstopping after this step (Ctrl-C again to abort at once)", err=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        run_dir = train(options, resume=resume, should_stop=lambda step: stop["requested"])
    finally:
        signal.signal(signal.SIGINT, previous)
    if run_dir is not None:
        snapshots = sorted(run_dir.glob("network-snapshot-*"))
        click.echo(f"run folder: {run_dir}")
        if snapshots:
            click.echo(f"latest snapshot: {snapshots[-1]}")
