"""`ganprint evaluate ...`: robustness grids (attack x strength) and the secrecy test."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import GanprintError
from . import options as opt

DEFAULT_MODEL_ATTACKS = "weight_noise,quantize,prune"  # finetune only on request: it trains


def _attack_levels(specs: tuple[str, ...], allow_model: bool, native: bool = False):
    """Split --attacks items into image and model attack levels. Default: for fixed-resolution
    subjects the fixed-size attacks and, for subjects with a network, the cheap model attacks; when a
    subject works at native sizes (`native`), the attacks in the wild of issue 20. `all`: every image
    attack (plus the cheap model attacks)."""
    from ..attacks import ANY_SIZE_ATTACKS, ATTACKS, FIXED_SIZE_ATTACKS, parse_attack_levels, split_spec
    from ..model_attacks import MODEL_ATTACKS, parse_model_attack_levels

    items = split_spec(list(specs))
    if not items and native:
        return parse_attack_levels(ANY_SIZE_ATTACKS)
    if not items or items == ["all"]:
        levels = parse_attack_levels(None, default=None if items else FIXED_SIZE_ATTACKS)
        return levels + (parse_model_attack_levels(DEFAULT_MODEL_ATTACKS) if allow_model else [])
    image = [i for i in items if i.partition(":")[0].strip() not in MODEL_ATTACKS]
    model = [i for i in items if i.partition(":")[0].strip() in MODEL_ATTACKS]
    if model and not allow_model:
        raise GanprintError(f"model attacks ({', '.join(model)}) need a model; a folder of images has none")
    for item in image:
        name = item.partition(":")[0].strip()
        if name not in ATTACKS:
            known = ", ".join([*ATTACKS, *MODEL_ATTACKS])
            raise GanprintError(f"unknown attack {name!r}; known: {known} (see `ganprint attacks`)")
    return (parse_attack_levels(image) if image else []) + (parse_model_attack_levels(model) if model else [])


def _print_table(result) -> None:
    models = result.models
    labels = list(dict.fromkeys(r["label"] for r in result.rows))
    width = max(len(label) for label in labels) + 2
    col = max(14, *(len(m) + 2 for m in models))
    click.echo("bit accuracy / detected share".ljust(width) + "".join(m.rjust(col) for m in models))
    for label in labels:
        cells = []
        for m in models:
            r = result.row(m, label)
            cells.append(("-" if r is None else f"{r['bit_accuracy']:.3f} / {r['detection_rate']:.2f}").rjust(col))
        click.echo(label.ljust(width) + "".join(cells))


def _finish(result, output_dir, overwrite) -> None:
    from ..evaluation.report import write_report

    paths = write_report(result, output_dir, overwrite=overwrite)
    _print_table(result)
    for note in result.meta.get("skipped", []):
        click.echo(f"note: {note['model']} {note['label']} skipped ({note['reason']})", err=True)
    click.echo(f"report: {paths['report.html']}\nresults: {paths['results.csv']}, {paths['results.json']}")


def _common(f):
    """Options of every grid command."""
    for option in reversed([
        click.option("--attacks", "attack_specs", multiple=True, metavar="LIST",
                     help="Attack levels, comma separated: NAME (all its levels) or NAME:VALUE, e.g. "
                     "'jpeg:75,noise,crop:0.9,quantize:8', or 'all' [default: for any-size codecs the attacks in "
                     "the wild (JPEG, WebP, rescale, area crops, rotation, colour, screenshot); otherwise the "
                     "fixed-size image attacks plus weight_noise, quantize, prune for models]. See `ganprint attacks`."),
        opt.fpr,
        click.option("--examples", type=click.IntRange(0, 16), default=4, show_default=True,
                     help="Example images per model and attack level in the HTML report."),
        click.option("--batch-size", "--batch_size", "batch_size", type=click.IntRange(min=1), default=256,
                     show_default=True, help="Images per batch."),
        opt.seed,
        opt.overwrite,
        opt.device,
        opt.quiet,
    ]):  # fmt: skip
        f = option(f)
    return f


@click.group(invoke_without_command=True)
@click.option("--codec", "codecs", multiple=True, metavar="NAME|PATH",
              help="Codec to evaluate (shipped name, model folder or original .pth); repeat to compare several.")
@click.option("--scalable", "scalables", multiple=True, metavar="NAME|PATH",
              help="Scalable-fingerprinting network (model or run folder) to evaluate; repeatable.")
@click.option("--data", default=None, metavar="SPEC",
              help="Clean images for codecs: folder, .zip, idx file, 'fashion-mnist[:test]' or 'samples' "
                   "[default: samples; any-size codecs need it: images kept at their own sizes].")
@click.option("--split", type=click.Choice(["all", "val"]), default="all", show_default=True,
              help="val: only the held-out split a codec trained on --data (default seed) never saw.")
@click.option("--images", "count", type=click.IntRange(min=1), default=256, show_default=True,
              help="Images per model (codec: from --data; generator: samples).")
@click.option("--refine-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Codecs: informed embedding, this many Adam steps per image after the encoder "
                   "(as `codec embed --refine-steps`).")
@click.option("--output-dir", "--output_dir", "output_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for results.csv, results.json, the plots and report.html.")
@_common
@click.pass_context
def evaluate(ctx, codecs, scalables, data, split, count, refine_steps, output_dir, attack_specs, false_positive_rate,
             examples, batch_size, seed, overwrite, device, quiet) -> None:  # fmt: skip
    """Measure how well fingerprints survive attacks: every model under every attack level (bit
    accuracy, p-value, detection rate at --fpr, PSNR/SSIM), written as CSV, JSON, plots and one
    self-contained HTML report with example images.

    \b
    Examples:
      ganprint evaluate --codec codec-32 --output_dir rob/
      ganprint evaluate --codec codec-any --data photos/ --images 64 --output_dir rob-any/
      ganprint evaluate --codec codec-any --data photos/ --output_dir rob-any/ --attacks jpeg:75,rescale:0.5,crop_area:0.5
      ganprint evaluate --codec codec-32 --codec runs/00001-codec-ganprint-32px-100b/final \\
          --data photos/ --output_dir rob/ --attacks jpeg,noise,blur:1,crop:0.9,brightness:0.7,brightness:1.3
      ganprint evaluate --scalable runs/00002-scalable-cpu32 --output_dir rob-scalable/ --attacks noise,quantize:8
      ganprint evaluate folder gan_out/ --expected marked/embedded_fingerprints.txt --output_dir rob-gan/
      ganprint evaluate gan runs/00000-gan-cpu32-32px --fingerprint marked/ --output_dir rob-gan-model/
      ganprint evaluate secrecy --codec codec-32 --data photos/ --output_dir secrecy/
    """
    if ctx.invoked_subcommand is not None:
        given = [name for name, value in (("--codec", codecs), ("--scalable", scalables), ("--output_dir", output_dir),
                                          ("--attacks", attack_specs)) if value]  # fmt: skip
        if given:
            raise click.UsageError(f"{given[0]} goes after the sub-command `{ctx.invoked_subcommand}`")
        if refine_steps:
            raise click.UsageError(f"--refine-steps is for --codec grids, not for `{ctx.invoked_subcommand}`")
        return
    if not codecs and not scalables:
        raise click.UsageError("give --codec or --scalable (repeatable), or a sub-command: folder, gan, secrecy")
    if output_dir is None:
        raise click.UsageError("Missing option '--output_dir'.")
    from ..evaluation.grid import run_grid
    from ..evaluation.report import check_output_dir
    from ..evaluation.subjects import codec_subject, scalable_subject, subject_name

    check_output_dir(output_dir, overwrite)
    _attack_levels(attack_specs, allow_model=True)  # a bad --attacks fails before any model is loaded
    taken: set[str] = set()
    subjects = [
        codec_subject(spec, data, count, split, seed, device, batch_size, name=subject_name(spec, taken),
                      refine_steps=refine_steps)
        for spec in codecs
    ] + [
        scalable_subject(spec, count, seed, device=device, batch_size=min(batch_size, 64), name=subject_name(spec, taken))
        for spec in scalables
    ]  # fmt: skip
    levels = _attack_levels(attack_specs, allow_model=True, native=any(s.native for s in subjects))
    result = run_grid(subjects, levels, false_positive_rate, seed, examples, progress=not quiet)
    _finish(result, output_dir, overwrite)


@evaluate.command()
@click.argument("network", metavar="RUN|MODEL")
@click.option("--fingerprint", "expected", required=True, metavar="FILE|BITS|HEX",
              help="The training set's fingerprint: its embedded_fingerprints.txt (or that folder), bits or hex.")
@click.option("--codec", "decoder", default=None, metavar="NAME|PATH",
              help="Codec that fingerprinted the training set and reads the images [default: the shipped codec].")
@click.option("--output-dir", "--output_dir", "output_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for the report files.")
@click.option("--images", "count", type=click.IntRange(min=1), default=256, show_default=True,
              help="Generated images (fixed latents) per attack level.")
@_common
def gan(network, expected, decoder, output_dir, count, attack_specs, false_positive_rate, examples, batch_size, seed,
        overwrite, device, quiet) -> None:  # fmt: skip
    """Robustness of a GAN trained on fingerprinted data (`ganprint gan train`): image attacks on its
    samples and model attacks on its generator (weight noise, quantization, pruning), read by the
    codec that fingerprinted the training set.

    \b
    Examples:
      ganprint evaluate gan runs/00000-gan-cpu32-32px --fingerprint marked/embedded_fingerprints.txt \\
          --output_dir rob-gan/ --attacks weight_noise,quantize,prune,jpeg:75,noise:0.05
    """
    from ..evaluation.grid import run_grid
    from ..evaluation.report import check_output_dir
    from ..evaluation.subjects import gan_subject

    check_output_dir(output_dir, overwrite)
    levels = _attack_levels(attack_specs, allow_model=True)
    subject = gan_subject(network, expected, decoder, count, seed, device, min(batch_size, 64))
    result = run_grid([subject], levels, false_positive_rate, seed, examples, progress=not quiet)
    _finish(result, output_dir, overwrite)


@evaluate.command()
@click.argument("folder", metavar="DIR")
@click.option("--expected", required=True, metavar="FILE|BITS|HEX",
              help="embedded_fingerprints.txt (or its folder), or one fingerprint that every image should carry.")
@click.option("--codec", "decoder", default=None, metavar="NAME|PATH",
              help="Codec whose decoder reads the images [default: the shipped codec].")
@click.option("--output-dir", "--output_dir", "output_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for the report files.")
@click.option("--images", "count", type=click.IntRange(min=1), default=None, help="Use at most this many images.")
@opt.strict
@_common
def folder(folder, expected, decoder, output_dir, count, strict, attack_specs, false_positive_rate, examples,
           batch_size, seed, overwrite, device, quiet) -> None:  # fmt: skip
    """Robustness of the fingerprints in a folder of images (e.g. a GAN's outputs, or images
    fingerprinted by `ganprint codec embed`), read by a codec's decoder. Image attacks only; an
    any-size codec reads (and the attacks hit) every image at its own size.

    \b
    Examples:
      ganprint evaluate folder marked/fingerprinted_images --expected marked/embedded_fingerprints.txt \\
          --output_dir rob-folder/
      ganprint evaluate folder gan_samples/ --expected 0x9f3c... --codec my-codec/ --output_dir rob-gan/
      ganprint evaluate folder marked/fingerprinted_images --expected marked/ --codec codec-any --output_dir rob-any/
    """
    from ..evaluation.grid import run_grid
    from ..evaluation.report import check_output_dir
    from ..evaluation.subjects import folder_subject

    check_output_dir(output_dir, overwrite)
    _attack_levels(attack_specs, allow_model=False)
    subject = folder_subject(folder, expected, decoder, count, device, batch_size, strict)
    levels = _attack_levels(attack_specs, allow_model=False, native=subject.native)
    result = run_grid([subject], levels, false_positive_rate, seed, examples, progress=not quiet)
    _finish(result, output_dir, overwrite)


@evaluate.command()
@click.option("--codec", "codec_spec", default=None, metavar="NAME|PATH",
              help="Codec that fingerprints the --data images (each clean image gets a fingerprinted twin).")
@click.option("--data", default="samples", show_default=True, metavar="SPEC", help="Clean images (with --codec).")
@click.option("--clean", "clean_dir", default=None, metavar="DIR", help="Clean images (instead of --codec).")
@click.option("--fingerprinted", "marked_dir", default=None, metavar="DIR",
              help="Fingerprinted images (with --clean); pairs are matched by name when the names agree.")
@click.option("--image-resolution", "--image_resolution", "resolution", type=opt.ImageSide(8), default=None,
              help="Resolution images are brought to [default: the codec's, else 32].")
@click.option("--images", "count", type=click.IntRange(min=4), default=2000, show_default=True,
              help="Images per class at most.")
@click.option("--fingerprints", type=click.Choice(["shared", "random"]), default="shared", show_default=True,
              help="With --codec: one fingerprint for all images (as a GAN's training set) or one each.")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Classifier training steps.")
@click.option("--batch-size", "--batch_size", "batch_size", type=click.IntRange(min=2), default=64, show_default=True,
              help="Images per classifier step.")
@click.option("--test-fraction", type=click.FloatRange(0.05, 0.9), default=0.3, show_default=True,
              help="Held-out share of the images.")
@click.option("--output-dir", "--output_dir", "output_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for secrecy.json.")
@opt.seed
@opt.overwrite
@opt.device
@opt.quiet
def secrecy(codec_spec, data, clean_dir, marked_dir, resolution, count, fingerprints, steps, batch_size,
            test_fraction, output_dir, seed, overwrite, device, quiet) -> None:  # fmt: skip
    """Can an adversary see the fingerprint? Trains a small classifier to tell fingerprinted from
    clean images and reports its held-out accuracy (0.5: it cannot; 1.0: it always can).

    \b
    Examples:
      ganprint evaluate secrecy --codec codec-32 --data photos/ --output_dir secrecy/
      ganprint evaluate secrecy --clean photos/ --fingerprinted marked/fingerprinted_images --output_dir secrecy/
    """
    import torch

    from ..device import resolve_device
    from ..evaluation.report import check_output_dir
    from ..evaluation.secrecy import SecrecyOptions, secrecy_test
    from ..evaluation.subjects import load_images, to_8bit
    from ..io import atomic_write_json

    if (codec_spec is None) == (clean_dir is None and marked_dir is None):
        raise click.UsageError("give either --codec (with --data) or --clean and --fingerprinted")
    if codec_spec is None and (clean_dir is None or marked_dir is None):
        raise click.UsageError("--clean and --fingerprinted go together")
    check_output_dir(output_dir, overwrite, files=("secrecy.json",))
    dev = resolve_device(device)
    options = SecrecyOptions(steps=steps, batch_size=batch_size, test_fraction=test_fraction, seed=seed)
    if codec_spec is not None:
        from ..codec.importing import load_codec

        codec = load_codec(codec_spec, resolution, dev)
        _, clean = load_images(data, codec.config.resolution, count)
        g = torch.Generator().manual_seed(seed)
        length = codec.config.fingerprint_length
        bits = (torch.randint(0, 2, (length,), generator=g).float().expand(len(clean), -1) if fingerprints == "shared"
                else torch.randint(0, 2, (len(clean), length), generator=g).float())  # fmt: skip
        marked = to_8bit(codec.embed(clean, bits).cpu())
        paired, source = True, {"codec": str(codec_spec), "data": data, "fingerprints": fingerprints}
    else:
        r = resolution or 32
        clean_names, clean = load_images(clean_dir, r, count)
        marked_names, marked = load_images(marked_dir, r, count)
        # Pairs when both folders hold the same names (as `codec embed` writes them from a flat folder).
        stem = lambda n: n.rsplit(".", 1)[0].replace("/", "__")  # noqa: E731
        paired = [stem(n) for n in clean_names] == [stem(n) for n in marked_names]
        source = {"clean": clean_dir, "fingerprinted": marked_dir, "paired": paired}
    result = secrecy_test(clean, marked, options, paired=paired, device=dev, progress=not quiet)
    record = {**result.to_dict(), **source, "resolution": int(clean.shape[-1])}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "secrecy.json", record)
    click.echo(
        f"held-out accuracy {result.test_accuracy:.3f} on {result.test_images} images (0.5 = cannot tell; "
        f"p-value of doing better than chance {result.p_value:.3g}); train accuracy {result.train_accuracy:.3f}"
    )
    click.echo(f"results: {out / 'secrecy.json'}")

