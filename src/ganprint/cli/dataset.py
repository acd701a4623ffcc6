"""`ganprint dataset ...`: make training datasets (a zip or folder of PNGs + dataset.json)."""

from __future__ import annotations

import json

import click

from . import options as opt


class _UnderscoreAliases(click.Group):
    """Also accepts the original tool's command spellings (create_celeba, create_from_images, ...)."""

    def get_command(self, ctx: click.Context, cmd_name: str):
        return super().get_command(ctx, cmd_name.replace("_", "-"))


@click.group(cls=_UnderscoreAliases)
def dataset() -> None:
    """Make training datasets: PNGs in a .zip (or a folder) plus a dataset.json manifest (resolution,
    channels, count, labels, each image's source name). Training and metrics read them lazily.

    \b
    Examples:
      ganprint dataset create-celeba datasets/celeba_30k.zip celeba/Img/img_align_celeba_png --num-images 30000
      ganprint dataset create-from-images datasets/bedroom_128.zip lsun_bedroom_train/ --resolution 128
      ganprint dataset create-fashion-mnist datasets/fmnist_32.zip --resolution 32
      ganprint dataset info datasets/fmnist_32.zip
    """


def _common(resolution_default=None, resolution_help="Side of the square output images [default: as the source]."):
    """OUTPUT and the options every create-* command has."""

    def decorate(f):
        for option in reversed([
            click.argument("output", type=click.Path(dir_okay=True)),
            click.option("--num-images", "--num_images", "--max-images", "--max_images", "num_images",
                         type=click.IntRange(min=1), default=None, help="Write at most this many images [default: all]."),
            click.option("--resolution", type=opt.ImageSide(), default=resolution_default,
                         show_default=resolution_default is not None, help=resolution_help),
            opt.strict,
            click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it already exists."),
            opt.quiet,
        ]):  # fmt: skip
            f = option(f)
        return f

    return decorate


def _report(summary) -> None:
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    r = summary.resolution
    skipped = f"; skipped {summary.skipped} unreadable" if summary.skipped else ""
    labels = ", with labels" if summary.labels else ""
    click.echo(f"wrote {summary.count} images ({r}x{r}, {summary.channels} channel(s){labels}) to {summary.output}{skipped}")


@dataset.command("create-celeba")
@_common(128, "Side of the output images; the 128x128 crop is resized when not 128.")
@click.argument("source", metavar="CELEBA_DIR")
def create_celeba(output, source, num_images, resolution, strict, overwrite, quiet) -> None:
    """Aligned CelebA (178x218 images): the first N in name order, each cut to the 128x128 box centred
    at (x, y) = (89, 121), i.e. rows 57..184 and columns 25..152.

    \b
    Examples:
      ganprint dataset create-celeba datasets/celeba_30k.zip celeba/Img/img_align_celeba_png --num-images 30000
      ganprint dataset create_celeba datasets/celeba_64 celeba/Img/img_align_celeba --num_images 30000 --resolution 64
    """
    from ..dataset_tool import create_celeba as create

    _report(create(output, source, num_images=num_images, resolution=resolution, strict=strict, overwrite=overwrite,
                   progress=not quiet))  # fmt: skip


@dataset.command("create-from-images")
@_common(None, "Center-crop to a square and resize every image to this side [default: images must all be "
               "square and of one size].")  # fmt: skip
@click.argument("source", metavar="SOURCE")
@opt.follow_links
@click.option("--shuffle", type=click.BOOL, is_flag=False, flag_value=True, default=False, show_default=True,
              help="Take the images in a random order (--seed); '--shuffle' alone or '--shuffle 1' (original form).")
@opt.seed
def create_from_images(output, source, num_images, resolution, strict, overwrite, quiet, shuffle, seed) -> None:
    """Any images: a folder (recursive), a .zip, an idx file or 'fashion-mnist'. Mixed sizes and modes
    are converted: 8-bit RGB, the centred square, resized with Lanczos to --resolution.

    \b
    Examples:
      ganprint dataset create-from-images datasets/bedroom_128.zip lsun_bedroom_train/ --num-images 30000 \\
          --resolution 128
      ganprint dataset create_from_images datasets/cat_256 lsun_cat/ --shuffle 0 --num_images 50000 --resolution 256
      ganprint dataset create-from-images datasets/photos_64.zip photos/ --resolution 64 --shuffle --seed 1
    """
    from ..dataset_tool import create_from_images as create

    _report(create(output, source, resolution=resolution, shuffle=shuffle, seed=seed, num_images=num_images,
                   strict=strict, overwrite=overwrite, progress=not quiet))  # fmt: skip


@dataset.command("create-lsun")
@_common(256, "Center-crop to a square and resize every image to this side.")
@click.argument("source", metavar="LMDB_DIR")
def create_lsun(output, source, num_images, resolution, strict, overwrite, quiet) -> None:
    """LSUN's LMDB databases (e.g. bedroom_train_lmdb/: keys -> WebP or JPEG images), in key order.
    Needs the lmdb package (pip install lmdb).

    \b
    Examples:
      ganprint dataset create-lsun datasets/bedroom_30k_128.zip bedroom_train_lmdb --num-images 30000 --resolution 128
      ganprint dataset create_lsun datasets/cat_50k_256.zip cat --max_images 50000
    """
    from ..dataset_tool import create_lsun as create

    _report(create(output, source, resolution=resolution, num_images=num_images, strict=strict, overwrite=overwrite,
                   progress=not quiet))  # fmt: skip


@dataset.command("create-cifar10")
@_common()
@click.argument("source", metavar="CIFAR_DIR|TAR_GZ")
@click.option("--split", type=click.Choice(["train", "test", "all"]), default="train", show_default=True,
              help="train: data_batch_1..5; test: test_batch; all: both.")
def create_cifar10(output, source, num_images, resolution, strict, overwrite, quiet, split) -> None:
    """CIFAR-10's python version (cifar-10-batches-py/ or cifar-10-python.tar.gz) with labels. The
    batches are pickles: they are parsed without executing anything, and any code in them is refused.

    \b
    Examples:
      ganprint dataset create-cifar10 datasets/cifar10.zip cifar-10-batches-py
      ganprint dataset create-cifar10 datasets/cifar10_test.zip cifar-10-python.tar.gz --split test
    """
    from ..dataset_tool import create_cifar10 as create

    _report(create(output, source, split=split, resolution=resolution, num_images=num_images, strict=strict,
                   overwrite=overwrite, progress=not quiet))  # fmt: skip


def _idx_command(name: str, kind: str, default_source: str | None, what: str):
    @dataset.command(name, help=what)
    @_common()
    @click.argument("source", metavar="SOURCE" if default_source is None else "[SOURCE]", required=default_source is None,
                    default=default_source)
    @click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
                  help="Which idx file of a folder (train-* or t10k-*).")
    @click.option("--labels", type=click.Path(dir_okay=False, exists=True), default=None,
                  help="The idx1 labels file [default: the one beside the images, if any].")
    def command(output, source, num_images, resolution, strict, overwrite, quiet, split, labels) -> None:
        from ..dataset_tool import create_idx

        _report(create_idx(output, source, kind=kind, split=split, labels=labels, resolution=resolution,
                           num_images=num_images, strict=strict, overwrite=overwrite, progress=not quiet))  # fmt: skip

    return command


_idx_command("create-mnist", "mnist", None, """MNIST idx files (greyscale 28x28, 1 channel) with their labels.
    SOURCE is a folder holding train-images-idx3-ubyte[.gz] / t10k-images-idx3-ubyte[.gz] or one such file.

    \b
    Examples:
      ganprint dataset create-mnist datasets/mnist_32.zip mnist/ --resolution 32
      ganprint dataset create-mnist datasets/mnist_test.zip mnist/t10k-images-idx3-ubyte.gz
    """)  # fmt: skip
_idx_command("create-fashion-mnist", "fashion-mnist", "fashion-mnist", """Fashion-MNIST (greyscale 28x28,
    1 channel) with labels; by default from the Debian package dataset-fashion-mnist.
    SOURCE is 'fashion-mnist' (the package), a folder holding the idx files, or one such file.

    \b
    Examples:
      ganprint dataset create-fashion-mnist datasets/fmnist_32.zip --resolution 32
      ganprint dataset create-fashion-mnist datasets/fmnist_test.zip --split test
    """)  # fmt: skip


@dataset.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--resolution", type=click.IntRange(min=1), default=None,
              help="Fail unless the dataset has this resolution.")  # fmt: skip
def info(path, resolution) -> None:
    """Check a dataset (manifest against its images) and print its manifest without the file list.

    \b
    Example:
      ganprint dataset info datasets/fmnist_32.zip
    """
    from collections import Counter
    from dataclasses import asdict

    from ..dataset_tool import open_dataset

    _, manifest = open_dataset(path, resolution)
    record = {k: v for k, v in asdict(manifest).items() if k not in ("files", "source_names", "labels")}
    if manifest.labels is not None:
        record["label_counts"] = dict(sorted(Counter(manifest.labels).items()))
    click.echo(json.dumps(record, indent=2))
