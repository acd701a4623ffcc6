"""`ganprint gan ...`: train an unconditional StyleGAN2-style GAN on any images and generate from it
(the generative model of artificial fingerprinting: train it on fingerprinted images)."""

from __future__ import annotations

import click

from . import options as opt

# Options that shape the training itself: a resumed run must keep them.
_FIXED_ON_RESUME = ("data", "preset", "batch_size", "gamma", "lr", "r1_interval", "ema_kimg", "ema_rampup",
                    "mirror_augment", "seed")  # fmt: skip


@click.group()
def gan() -> None:
    """Unconditional GANs (StyleGAN2-style, the networks of `ganprint scalable` without the
    fingerprint input): train one on fingerprinted images and its outputs carry the fingerprint.

    \b
    Examples:
      ganprint codec embed --data_dir fashion-mnist:train --output_dir fp/ --identical_fingerprints
      ganprint gan train --data fp/fingerprinted_images --preset cpu32 --total-kimg 100
      ganprint gan generate --network runs/00000-gan-cpu32-32px --num-images 1000 --output-dir gen/
      ganprint codec detect --data_dir gen/ --output_dir det/ --expected fp/embedded_fingerprints.txt
    """


@gan.command()
@click.option("--data", "--data-dir", "--data_dir", "data", default=None, metavar="PATH",
              help="Training images: a folder or zip of images, a `ganprint dataset`, an idx file or "
              "'fashion-mnist'. All images must have one size (resized to the preset's resolution).")
@opt.output_dir(default="runs")
@click.option("--preset", type=click.Choice(["cpu32", "cpu64"]), default="cpu32", show_default=True,
              help="Networks and training defaults: cpu32 (32x32) or cpu64 (64x64), sized for a 2-core CPU.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="bf16: forward passes under bfloat16 autocast (R1 steps in fp32); about 1.15x faster on CPUs "
                   "with AVX512-BF16 (benchmarks/bench_gan_speed.py), more on recent GPUs. Not for data carrying "
                   "a fingerprint: it cost such GANs 45% in Frechet distance (docs/transfer.md).")
@opt.gan_training_options()
@click.pass_context
def train(ctx: click.Context, resume, quiet, **kwargs) -> None:
    """Train an unconditional GAN (non-saturating loss, lazy R1, moving-average generator). Ctrl-C
    stops after the current step with a resume checkpoint (press twice to abort at once). Under
    `torchrun --nproc_per_node N` the batch is split over N processes.

    \b
    Examples:
      ganprint gan train --data fp/fingerprinted_images --preset cpu32 --total-kimg 100 --seed 0
      ganprint gan train --data fashion-mnist --total-kimg 100          # a clean baseline
      ganprint gan train --resume runs/00000-gan-cpu32-32px --total-kimg 200
    """
    from ..gan.train import GanTrainOptions, load_run_options, train_gan

    options = opt.training_run_options(ctx, kwargs, resume, quiet, GanTrainOptions, load_run_options, _FIXED_ON_RESUME)
    opt.run_training(train_gan, options, resume)


@gan.command()
@click.option("--network", required=True, metavar="PATH|NAME",
              help="A GAN model folder (config.json + model.safetensors), a training run folder (its latest "
              "snapshot) or a shipped model: gan-32, the unfingerprinted baseline of scalable-32.")
@click.option("--seeds", default=None, metavar="LIST",
              help="Seeds, e.g. 0-63 or 1,5,9 or 0-9,100; one image per seed [default: 0-63].")
@click.option("--num-images", "--num_images", "num_images", type=click.IntRange(min=1), default=None,
              help="Instead of --seeds: seeds 0 .. N-1.")
@opt.output_dir()
@opt.noise_mode
@opt.batch_size
@opt.overwrite
@opt.device
@opt.quiet
def generate(network, seeds, num_images, output_dir, noise_mode, batch_size, overwrite, device, quiet) -> None:
    """Generate one PNG per seed, with generated_images.csv (name, seed) and generation.json. Seed s
    draws z (then, with --noise-mode random, the noise maps) from torch.Generator().manual_seed(s).

    \b
    Examples:
      ganprint gan generate --network gan-32 --seeds 0-63 --output-dir out/
      ganprint gan generate --network runs/00000-gan-cpu32-32px --seeds 0-63 --output-dir out/
      ganprint gan generate --network runs/00000-gan-cpu32-32px/network-snapshot-000100 \\
          --num-images 10000 --output-dir gen/
    """
    from ..gan.generate import generate_images
    from ..gan.network import GanNetwork
    from ..scalable.generate import parse_seeds

    if seeds is not None and num_images is not None:
        raise click.UsageError("give --seeds or --num-images, not both")
    seed_list = list(range(num_images)) if num_images is not None else parse_seeds(seeds or "0-63")
    net = GanNetwork.from_pretrained(network, device=device)
    summary = generate_images(net, seed_list, output_dir, noise_mode=noise_mode, batch_size=batch_size,
                              overwrite=overwrite, progress=not quiet, network_name=str(network))  # fmt: skip
    click.echo(f"generated {summary.images} images in {summary.output_dir}")
