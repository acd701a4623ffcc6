"""Options shared by several commands; each accepts the original tools' underscore spelling too."""

from __future__ import annotations

import click

from ..detection import DEFAULT_FALSE_POSITIVE_RATE


def data_dir(required: bool = True):
    return click.option(
        "--data-dir", "--data_dir", "data_dir", required=required, metavar="PATH",
        help="Images: a folder (read recursively), a .zip, an idx file, 'fashion-mnist[:train|:test]' or "
        "'samples' (the built-in set).",
    )  # fmt: skip


def output_dir(default: str | None = None):
    # No `default=None` for the required form: click >= 8.3 takes an explicit None as a given default
    # and would no longer report the option as missing.
    given = {"default": default, "show_default": True} if default is not None else {"required": True}
    return click.option(
        "--output-dir", "--output_dir", "output_dir", type=click.Path(file_okay=False), help="Folder for the outputs.",
        **given,
    )  # fmt: skip


image_resolution = click.option(
    "--image-resolution", "--image_resolution", "image_resolution", type=int, default=None,
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
    "--fpr", "false_positive_rate", type=click.FloatRange(min=0, max=1, min_open=True), show_default=True,
    default=DEFAULT_FALSE_POSITIVE_RATE,
    help="False-positive rate: an image is 'detected' when its p-value is at most this.",
)  # fmt: skip
quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")


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
