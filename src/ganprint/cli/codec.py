"""`ganprint codec ...`: train, embed, detect, import and inspect fingerprint codecs (ICCV 2021)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ..errors import GanprintError
from ..image_files import DEFAULT_QUALITY, OUTPUT_FORMATS
from ..pretrained import DEFAULT_CODEC
from . import options as opt
from .detect_output import echo_detect_summary


@click.group()
def codec() -> None:
    """Artificial fingerprinting (ICCV 2021): a codec hides a fingerprint in training images; any
    generative model trained on them reproduces it.

    \b
    Examples:
      ganprint codec train --data_dir photos/ --output_dir runs --steps 3000
      ganprint codec embed --data_dir photos/ --output_dir marked/ --identical_fingerprints
      ganprint codec detect --data_dir gan_out/ --output_dir det/ --expected marked/embedded_fingerprints.txt
    """


def _model_option(role: str):
    alias = {"encoder": "--encoder_path", "decoder": "--decoder_path"}[role]
    return click.option(
        "--model", alias, "--encoder-path" if role == "encoder" else "--decoder-path", "model",
        default=None, metavar="NAME|PATH",
        help=f"Codec: a shipped name, a folder with config.json + model.safetensors, or an original "
        f"*_{role}.pth file [default: {DEFAULT_CODEC}, any size; codec-32 with --image_resolution 32].",
    )  # fmt: skip


def _check_celeba(celeba: bool, resolution: int | None) -> None:
    """CelebA preprocessing crops 148 px and resizes to 128, as the original tools (which assert 128)."""
    if celeba and resolution not in (None, 128):
        raise GanprintError(
            f"--use_celeba_preprocessing needs --image_resolution 128 and a 128x128 model, not {resolution}x{resolution}"
        )


# ------------------------------------------------------------------------------------------ train
@codec.command()
@opt.data_dir(required=False)
@opt.output_dir(default="runs")
@click.option("--arch", type=click.Choice(["ganprint", "original"]), default="ganprint", show_default=True,
              help="ganprint: residual codec with annealed strength; original: the ICCV 2021 networks.")
@click.option("--image-resolution", "--image_resolution", "image_resolution", type=opt.ImageSide(), default=32,
              show_default=True,
              help="Training resolution, a power of two >= 32.")
@click.option("--fingerprint-length", "--fingerprint_length", "fingerprint_length", type=click.IntRange(1, 4096),
              default=100, show_default=True, help="Bits per fingerprint.")
@opt.celeba
@opt.batch_size
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Total training steps [default: 3000].")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Passes over the training split, instead of --steps.")
@click.option("--lr", type=float, default=None, help="Adam learning rate [default: 1e-3 ganprint, 1e-4 original].")
@click.option("--channels", type=click.IntRange(min=1), default=64, show_default=True, help="ganprint arch width.")
@click.option("--residual-rms", "residual_rms", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.014, show_default=True, help="ganprint arch: target residual RMS (PSNR ~ -20 log10 rms).")
@click.option("--mean-preserving", is_flag=True,
              help="ganprint arch: the residual leaves each image's mean colour unchanged (even where pixels "
              "clip at black or white); less visible to feature networks (docs/transfer.md).")
@click.option("--start-rms", "start_rms", type=float, default=0.1, show_default=True,
              help="ganprint arch: residual RMS at the start of the curriculum.")
@click.option("--anneal-accuracy", type=float, default=0.995, show_default=True,
              help="Smoothed bit accuracy that lowers the residual RMS one step.")
@click.option("--bce-loss-weight", "--BCE_loss_weight", "bce_loss_weight", type=float, default=1.0, show_default=True,
              help="Weight of the bit loss.")
@click.option("--l2-loss-scale", "--l2_loss_scale", "l2_loss_scale", type=float, default=None,
              help="Final image-loss weight [default: 0 ganprint, 10 original].")
@click.option("--l2-loss-await", "--l2_loss_await", "l2_loss_await", type=int, default=1000, show_default=True,
              help="Steps after the accuracy switch before the image loss ramps in.")
@click.option("--l2-loss-ramp", "--l2_loss_ramp", "l2_loss_ramp", type=int, default=3000, show_default=True,
              help="Steps of the linear image-loss ramp.")
@opt.augment
@opt.augment_ramp
@click.option("--snapshot-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Steps between snapshots and resume checkpoints.")
@click.option("--eval-every", type=click.IntRange(min=1), default=100, show_default=True,
              help="Steps between held-out evaluations.")
@click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True, help="Data loader processes.")
@opt.seed
@opt.device
@click.option("--init", default=None, metavar="NAME|PATH",
              help="Start from this codec's weights (a shipped name or model folder) instead of random ones: "
              "fine-tune it, e.g. through --augment. Networks must match; --residual-rms and --mean-preserving may differ.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False), default=None,
              help="Run folder to continue; its options are reused (--steps may extend it).")
@opt.quiet
def train(resume, quiet, **kwargs) -> None:
    """Train a codec (encoder + decoder) on a set of images.

    \b
    Examples:
      ganprint codec train --data_dir photos/ --output_dir runs --steps 3000
      ganprint codec train --data_dir celeba/ --use_celeba_preprocessing --image_resolution 128 \\
          --fingerprint_length 100 --batch_size 64 --arch original --epochs 20
      ganprint codec train --resume runs/00000-codec-ganprint-32px-100b --steps 5000
      ganprint codec train --data_dir photos/ --augment default --augment-ramp 1000  # immunized
      ganprint codec train --data_dir photos/ --init codec-32 --augment default --start-rms 0.02 \\
          --residual-rms 0.02 --steps 2000 --lr 3e-4                             # immunize a trained codec
    """
    from ..codec.train import CodecTrainOptions, train_codec

    if resume is not None:
        options_path = Path(resume) / "options.json"
        if not options_path.is_file():
            raise GanprintError(f"{resume}: not a codec run folder (no options.json)")
        try:
            saved = json.loads(options_path.read_text(encoding="utf-8"))
            names = {f.name for f in dataclasses.fields(CodecTrainOptions)}
            options = CodecTrainOptions(**{k: v for k, v in saved.items() if k in names})
        except (json.JSONDecodeError, TypeError) as exc:
            raise GanprintError(f"{options_path}: unreadable run options ({exc.__class__.__name__})") from None
        if kwargs["steps"] is not None:
            options.steps = kwargs["steps"]
        options.progress = not quiet
    else:
        if kwargs["data_dir"] is None:
            raise click.UsageError("--data_dir is required (unless --resume)")
        kwargs["use_celeba_preprocessing"] = kwargs.pop("celeba")
        options = CodecTrainOptions(**kwargs, progress=not quiet)
    run_dir = train_codec(options, resume=resume)
    click.echo(f"run folder: {run_dir}\nfinal model: {run_dir / 'final'}")


# ------------------------------------------------------------------------------------------ embed
@codec.command()
@_model_option("encoder")
@opt.data_dir()
@opt.output_dir()
@opt.image_resolution
@opt.celeba
@click.option("--identical-fingerprints", "--identical_fingerprints", "identical", is_flag=True,
              help="One random fingerprint for all images (what a GAN's training set needs).")
@click.option("--fingerprint", default=None, metavar="BITS|HEX",
              help="The fingerprint to embed in every image, as 0/1 characters or hexadecimal.")
@click.option("--strength", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="ganprint arch: residual RMS instead of the model's (higher: more robust, less invisible).")
@click.option("--refine-steps", type=click.IntRange(min=0), default=None,
              help="Informed embedding: Adam steps per image that tune its residual against the decoder at no lower "
                   "PSNR. Fixed-resolution codecs: through JPEG, crops, noise, blur and brightness (harder to erase; "
                   "40 steps take about 0.45 s per 32px image on two CPU cores); default 0. Any-size codecs: at "
                   "working resolution, until every bit reads with a margin after 8-bit rounding and after JPEG 75 "
                   "(codec-any, 10 steps: every bit back from a PNG, small images survive JPEG 75 better; several "
                   "times the embed time); default: 10 for greyscale images (whose residual is made grey), 0 for "
                   "colour. Needs a full codec.")
@click.option("--format", "image_format", type=click.Choice(list(OUTPUT_FORMATS)), default="png", show_default=True,
              help="Any-size codecs: the file format written (EXIF, ICC profile and DPI carried over; PNG text "
                   "chunks in PNG only; alpha kept in PNG and WebP). Fixed-resolution codecs write PNG.")
@click.option("--quality", type=click.IntRange(1, 100), default=DEFAULT_QUALITY, show_default=True,
              help="JPEG and WebP quality.")
@opt.batch_size
@opt.seed
@opt.strict
@opt.overwrite
@opt.device
@opt.quiet
def embed(model, data_dir, output_dir, image_resolution, celeba, identical, fingerprint, strength, refine_steps,
          image_format, quality, batch_size, seed, strict, overwrite, device, quiet) -> None:  # fmt: skip
    """Fingerprint a folder of images: writes fingerprinted_images/ and embedded_fingerprints.txt.

    An any-size codec keeps each image's size, mode (greyscale, 16-bit, alpha) and metadata (EXIF with
    the orientation applied, ICC profile, PNG text); a fixed-resolution one writes R x R PNGs after
    the original tools' resize and centre crop.

    \b
    Examples:
      ganprint codec embed --data_dir photos/ --output_dir marked/ --identical_fingerprints
      ganprint codec embed --data_dir photos/ --output_dir marked/ --format jpeg --quality 90
      ganprint codec embed --data_dir photos/ --output_dir marked/ --fingerprint 0x9f3c...  (25 hex digits)
      ganprint codec embed --model codec-32-robust --refine-steps 40 --data_dir photos/ --output_dir marked/
      ganprint codec embed --model codec-any --refine-steps 10 --data_dir photos/ --output_dir marked/
      ganprint codec embed --encoder_path CelebA_128x128_encoder.pth --data_dir celeba/ \\
          --use_celeba_preprocessing --image_resolution 128 --output_dir marked/ --identical_fingerprints
    """
    from ..codec.folders import embed_folder
    from ..codec.importing import load_codec

    _check_celeba(celeba, image_resolution)
    codec_ = load_codec(model, image_resolution, device)
    _check_celeba(celeba, codec_.config.resolution)
    summary = embed_folder(
        codec_, data_dir, output_dir, fingerprint=fingerprint, identical=identical, batch_size=batch_size, seed=seed,
        celeba=celeba, strict=strict, strength=strength, overwrite=overwrite, progress=not quiet, refine=refine_steps,
        image_format=image_format, quality=quality,
    )  # fmt: skip
    click.echo(f"fingerprinted {summary.images} images into {summary.output_dir / 'fingerprinted_images'}")
    if summary.fingerprint:
        click.echo(f"fingerprint: {summary.fingerprint}")


# ----------------------------------------------------------------------------------------- detect
@codec.command()
@_model_option("decoder")
@opt.data_dir()
@opt.output_dir()
@opt.image_resolution
@opt.celeba
@opt.detect_options
def detect(model, data_dir, output_dir, image_resolution, celeba, expected, false_positive_rate, batch_size, strict,
           overwrite, device, as_json, quiet) -> None:  # fmt: skip
    """Read fingerprints from a folder of images: writes detected_fingerprints.txt, and with
    --expected a per-image report (bit accuracy, p-value, verdict) and a summary.

    \b
    Examples:
      ganprint codec detect --data_dir generated/ --output_dir det/ --expected 0x9f3c...
      ganprint codec detect --data_dir marked/fingerprinted_images --output_dir det/ \\
          --expected marked/embedded_fingerprints.txt
      ganprint codec detect --decoder_path CelebA_128x128_decoder.pth --data_dir gan_out/ --output_dir det/
    """
    from ..codec.folders import detect_folder
    from ..codec.importing import load_codec

    _check_celeba(celeba, image_resolution)
    codec_ = load_codec(model, image_resolution, device)
    _check_celeba(celeba, codec_.config.resolution)
    # a calibration.json beside the model (ganprint calibrate) replaces fair coins by the calibrated null
    from ..calibration import load_calibration
    from ..decoders import describe_codec
    from ..detection import NullModel

    cal = load_calibration(describe_codec(model, codec_))
    null = cal.null_model() if cal else NullModel.fair(codec_.config.fingerprint_length)
    summary = detect_folder(
        codec_, data_dir, output_dir, expected=expected, false_positive_rate=false_positive_rate,
        batch_size=batch_size, celeba=celeba, strict=strict, overwrite=overwrite, progress=not quiet, null=null,
    )  # fmt: skip
    threshold = null.threshold(false_positive_rate)
    echo_detect_summary(summary, false_positive_rate, as_json, match_threshold=threshold, null=null.description)
    if not as_json and summary.mean_bit_accuracy is not None:
        click.echo(f"detected = at least {threshold}/{null.length} matching bits; null: {null.description}")


# ----------------------------------------------------------------------------------------- import
@codec.command(name="import")
@click.option("--encoder-path", "--encoder_path", "encoder_path", type=click.Path(dir_okay=False), default=None,
              help="Original *_encoder.pth.")
@click.option("--decoder-path", "--decoder_path", "decoder_path", type=click.Path(dir_okay=False), default=None,
              help="Original *_decoder.pth.")
@opt.image_resolution
@click.option("--output", "output", required=True, type=click.Path(file_okay=False),
              help="Folder to write config.json + model.safetensors into.")
@opt.overwrite
def import_(encoder_path, decoder_path, image_resolution, output, overwrite) -> None:
    """Convert original ICCV 2021 checkpoints (*_encoder.pth, *_decoder.pth) into a ganprint model
    folder. Read with torch.load(weights_only=True): nothing in the files is executed.

    \b
    Example:
      ganprint codec import --encoder_path CelebA_128x128_encoder.pth \\
          --decoder_path CelebA_128x128_decoder.pth --output models/celeba128
    """
    from ..codec.importing import codec_from_original

    paths = [p for p in (encoder_path, decoder_path) if p]
    if not paths:
        raise click.UsageError("give --encoder_path, --decoder_path or both")
    if (Path(output) / "model.safetensors").exists() and not overwrite:
        raise GanprintError(f"{output} already holds a model; pass --overwrite to replace it")
    codec_ = codec_from_original(*paths, resolution=image_resolution)
    codec_.save_pretrained(output)
    c = codec_.config
    parts = " + ".join(p for p in ("encoder", "decoder") if getattr(codec_, p) is not None)
    click.echo(f"wrote {output}: original {parts}, {c.resolution}x{c.resolution}, {c.fingerprint_length} bits")


# ------------------------------------------------------------------------------------------- fold
@codec.command()
@click.argument("model")
@click.option("--factor", type=click.IntRange(min=1), required=True,
              help="Copies of each bit: the new codec has (fingerprint length / factor) bits.")
@click.option("--output", "output", required=True, type=click.Path(file_okay=False),
              help="Folder to write config.json + model.safetensors into.")
@opt.overwrite
def fold(model, factor, output, overwrite) -> None:
    """Trade bits for robustness: a codec of L/FACTOR bits, each written FACTOR times and read as the
    sum of its copies' logits (exactly the original networks; no training). Fine-tune the result
    with `codec train --init` to adapt it; calibrate it with `ganprint calibrate`.

    \b
    Example:
      ganprint codec fold codec-32-immunized --factor 2 --output models/immunized-50b
    """
    from ..codec.folding import fold_codec
    from ..codec.importing import load_codec

    if (Path(output) / "model.safetensors").exists() and not overwrite:
        raise GanprintError(f"{output} already holds a model; pass --overwrite to replace it")
    folded = fold_codec(load_codec(model, device="cpu"), factor)
    folded.save_pretrained(output)
    stale = Path(output) / "calibration.json"
    if stale.exists():  # it described the model this one replaced
        stale.unlink()
        click.echo(f"removed {stale}: it belonged to the replaced model; run `ganprint calibrate` again")
    click.echo(f"wrote {output}: {folded.config.fingerprint_length} bits ({model} folded by {factor})")


# ------------------------------------------------------------------------------------------- info
@codec.command()
@click.argument("model", default=None, required=False)
@opt.image_resolution
def info(model, image_resolution) -> None:
    """Describe a codec: architecture, resolution, fingerprint length, parts and size.

    \b
    Example:
      ganprint codec info codec-32
    """
    from ..codec.importing import load_codec

    codec_ = load_codec(model, image_resolution, "cpu")
    c = codec_.config
    parts = [p for p in ("encoder", "decoder") if getattr(codec_, p) is not None]
    n = sum(p.numel() for p in codec_.parameters())
    click.echo(json.dumps({**c.to_dict(), "parts": parts, "parameters": n}, indent=2))
