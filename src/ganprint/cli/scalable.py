"""`ganprint scalable ...`: train, generate, measure, detect and export scalable fingerprinting
networks (ICLR 2022). The original tool's flag names are accepted as aliases."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import click

from ..errors import GanprintError
from . import options as opt
from .detect_output import echo_detect_summary

DEFAULT_NETWORK = "scalable-32"


@click.group()
def scalable() -> None:
    """Scalable fingerprinting (ICLR 2022): one generator G(z, c) for 2^L fingerprinted models; its
    decoder reads the code c back from any image.

    \b
    Examples:
      ganprint dataset create-fashion-mnist fmnist32.zip --resolution 32
      ganprint scalable train --data fmnist32.zip --preset cpu32 --total-kimg 300
      ganprint scalable generate --network runs/00000-scalable-cpu32-32px-128b --seeds 0-63 --output-dir out/
      ganprint scalable detect --network scalable-32 --data-dir out/ --output-dir det/ \\
          --expected out/embedded_fingerprints.txt
      ganprint scalable export --network scalable-32 --fingerprint random --output model-a/
    """


def _network_option(help_extra: str = ""):
    return click.option(
        "--network", default=DEFAULT_NETWORK, show_default=True, metavar="NAME|PATH",
        help="A shipped network, a model folder (config.json + model.safetensors) or a training run folder "
        f"(its latest snapshot).{help_extra}",
    )  # fmt: skip


def _load(network: str, device: str):
    from ..scalable.network import ScalableNetwork

    return ScalableNetwork.from_pretrained(network, device=device)


# ------------------------------------------------------------------------------------------ train
# Options that shape the training itself: a resumed run must keep them.
_FIXED_ON_RESUME = (
    "data", "preset", "fingerprint_size", "res_modulated_range", "batch_size", "gamma", "lr", "decoder_lr",
    "consistency_weight", "z_reconstruction_weight", "c_reconstruction_weight", "r1_interval",
    "ema_kimg", "ema_rampup", "mirror_augment", "augment", "augment_ramp", "decode_both", "decode_uint8",
    "code_grad_scope", "code_content_grad", "z_styles", "carrier_std", "paired_code_weight",
    "paired_code_kimg", "seed",
)  # fmt: skip


@scalable.command()
@click.option("--data", "--data-dir", "--data_dir", "--dataset", "data", default=None, metavar="PATH",
              help="Training images: a `ganprint dataset` zip/folder, any folder or zip of images, an idx file or "
              "'fashion-mnist'. All images must have one size (resized to the preset's resolution).")
@opt.output_dir(default="runs")
@click.option("--preset", type=click.Choice(["cpu32", "cpu64", "paper128", "paper256"]), default="cpu32",
              show_default=True, help="Networks and training defaults (see docs).")
@click.option("--fingerprint-size", "--watermark-size", "--watermark_size", "fingerprint_size", type=click.IntRange(1, 4096),
              default=None, help="Bits of the fingerprint code [default: 128].")
@click.option("--res-modulated-range", "--res_modulated_range", "res_modulated_range", default=None, metavar="LOW-HIGH",
              help="Resolutions whose layers c modulates, e.g. 4-32 [default: all].")
@click.option("--consistency-weight", "--decoupleL2-weight", "--decoupleL2_weight", "consistency_weight", type=float,
              default=2.0, show_default=True, help="Weight of mean (G(z,c) - G(z,c'))^2.")
@click.option("--z-reconstruction-weight", "--latentsRecL2-weight", "--latentsRecL2_weight", "z_reconstruction_weight",
              type=float, default=1.0, show_default=True, help="Weight of mean (z - F_z(G(z,c)))^2.")
@click.option("--c-reconstruction-weight", "--watermarkCls-weight", "--watermarkCls_weight", "c_reconstruction_weight",
              type=float, default=None,
              help="Weight of the bit cross-entropy of F_c(G(z,c)) [default: the preset's: 10 cpu presets, 2 paper].")
@click.option("--paired-code-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of the bit cross-entropy of F's logit differences between G(z, c) and G(z, c') where the "
              "codes differ: the content cancels, so F finds the code early on every seed. Trains F only (needs "
              "--decode-both; one process).")
@click.option("--paired-code-kimg", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Apply --paired-code-weight only for the first this many kimg: it starts the code, and later "
              "costs the samples [default: throughout].")
@click.option("--decoder-lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Adam learning rate of the decoder F [default: the preset's: 0.01 cpu presets, else --lr].")
@click.option("--decode-both", type=click.BOOL, default=None,
              help="F also reads G(z, c') with its code: twice the code examples per generator pass "
              "[default: the preset's: true cpu presets, false paper].")
@click.option("--decode-uint8", type=click.BOOL, default=None,
              help="F reads the images rounded to 8 bits, as PNGs store them (straight-through gradient) "
              "[default: the preset's: true cpu presets, false paper].")
@click.option("--code-content-grad", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="With --code-grad-scope code: the share of the code loss's gradient that still reaches the "
              "layers that draw the content (0: none).")
@click.option("--z-styles", type=click.BOOL, default=None,
              help="z also makes styles at every layer through its own mapping network, as in an unfingerprinted "
              "StyleGAN2 (beyond the paper, where z only makes the 4x4 input); folding keeps z's styles and bakes "
              "in c's [default: false].")
@click.option("--carrier-std", type=click.FloatRange(min=0), default=None,
              help="Init std of the learned constant maps added to every synthesis layer's input, which the code's "
              "styles weight into its signal (0: none) [default: the preset's: 1 cpu presets, 0 paper].")
@click.option("--code-grad-scope", type=click.Choice(["all", "code"]), default="all", show_default=True,
              help="Which generator parameters the code loss trains: all (the paper), or code: only the mapping "
              "network and the style affines, so the code cannot pull the content towards easily coded "
              "images (docs/scalable.md, Fidelity).")
@opt.augment
@opt.augment_ramp
@click.option("--metrics-kimg", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="kimg between bit-accuracy evaluations (0: at the end only).")
@click.option("--metric-images", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Generated images per bit-accuracy evaluation.")
@opt.gan_training_options("--resume-pkl", "--resume_pkl")
@click.pass_context
def train(ctx: click.Context, resume, quiet, **kwargs) -> None:
    """Train G(z, c), its decoder F and a discriminator. Ctrl-C stops after the current step with a
    resume checkpoint (press twice to abort at once). Under `torchrun --nproc_per_node N` the batch
    is split over N processes (DistributedDataParallel).

    \b
    Examples:
      ganprint scalable train --data fmnist32.zip --preset cpu32 --total-kimg 300 --seed 0
      ganprint scalable train --data celeba_30k.zip --preset paper128 --watermark-size 128 \\
          --res-modulated-range 4-128 --gamma 100
      ganprint scalable train --resume runs/00000-scalable-cpu32-32px-128b --total-kimg 1000
      ganprint scalable train --data fmnist32.zip --augment default --augment-ramp 2000   # immunized
      torchrun --nproc_per_node 2 "$(which ganprint)" scalable train --data celeba_30k.zip --preset paper128
    """
    from ..scalable.config import parse_res_range
    from ..scalable.train import TrainOptions, load_run_options, train_scalable

    def normalize(key, value):  # the range as the resolved options spell it
        return "{}-{}".format(*parse_res_range(value)) if key == "res_modulated_range" and value is not None else value

    options = opt.training_run_options(ctx, kwargs, resume, quiet, TrainOptions, load_run_options, _FIXED_ON_RESUME,
                                       normalize)  # fmt: skip
    opt.run_training(train_scalable, options, resume)


# --------------------------------------------------------------------------------------- generate
@scalable.command()
@_network_option()
@click.option("--seeds", default=None, metavar="LIST",
              help="Seeds, e.g. 0-63 or 1,5,9 or 0-9,100; one image per seed [default: 0-63].")
@click.option("--num-images", "--num_images", "num_images", type=click.IntRange(min=1), default=None,
              help="Instead of --seeds: seeds 0 .. N-1.")
@opt.output_dir()
@click.option("--identical-latent", "--identical_latent", "identical_latent", type=click.BOOL, default=False,
              is_flag=False, flag_value=True, show_default=True, help="Every image gets the latent z of the first seed.")
@click.option("--identical-fingerprint", "--identical-watermark", "--identical_watermark", "identical_fingerprint",
              type=click.BOOL, default=False, is_flag=False, flag_value=True, show_default=True,
              help="Every image gets the fingerprint of the first seed.")
@click.option("--fingerprint", "--watermark", default=None, metavar="BITS|HEX",
              help="Generate as the model with this fingerprint (0/1 characters or hexadecimal).")
@opt.noise_mode
@opt.batch_size
@opt.overwrite
@opt.device
@opt.quiet
def generate(network, seeds, num_images, output_dir, identical_latent, identical_fingerprint, fingerprint, noise_mode,
             batch_size, overwrite, device, quiet) -> None:  # fmt: skip
    """Generate one PNG per seed, with generated_images.csv and embedded_fingerprints.txt recording
    each image's seed and fingerprint. For seed s the RNG draws z, then c (then noise maps with
    --noise-mode random), whatever the flags, so flags never change what a seed means.

    \b
    Examples:
      ganprint scalable generate --network scalable-32 --seeds 0-63 --output-dir out/
      ganprint scalable generate --seeds 0-15 --identical-watermark --output-dir same-model/
      ganprint scalable generate --seeds 0-99 --fingerprint 0x3f9a...  --output-dir model-3f9a/   (32 hex digits)
    """
    from ..scalable.generate import generate_images, parse_seeds

    if seeds is not None and num_images is not None:
        raise click.UsageError("give --seeds or --num-images, not both")
    seed_list = list(range(num_images)) if num_images is not None else parse_seeds(seeds or "0-63")
    net = _load(network, device)
    summary = generate_images(
        net, seed_list, output_dir, identical_latent=identical_latent, identical_fingerprint=identical_fingerprint,
        fingerprint=fingerprint, noise_mode=noise_mode, batch_size=batch_size, overwrite=overwrite,
        progress=not quiet, network_name=str(network),
    )  # fmt: skip
    click.echo(f"generated {summary.images} images in {summary.output_dir}")
    if summary.fingerprint:
        click.echo(f"fingerprint: {summary.fingerprint}")


# ---------------------------------------------------------------------------------------- metrics
@scalable.command()
@_network_option()
@click.option("--data", "--data-dir", "--data_dir", "--dataset", "data", default=None, metavar="PATH",
              help="Real images for FID (a `ganprint dataset`, folder, zip, 'fashion-mnist', ...); without it, "
              "only the bit accuracy is measured.")
@click.option("--num-images", "--num_images", "num_images", type=click.IntRange(min=2), default=10000,
              show_default=True, help="Generated images (and real images for FID).")
@opt.fid_weights
@opt.batch_size
@opt.seed
@opt.device
@opt.json_result_output
@opt.json_result
@opt.quiet
def metrics(network, data, num_images, fid_weights, batch_size, seed, device, output, as_json, quiet) -> None:
    """FID of N generated vs N real images (8-bit, as saved) and the decoder's mean bit accuracy on
    the same generated images, on float outputs and on 8-bit images (the original
    fid_watermark_accuracy_30k).

    \b
    Examples:
      ganprint scalable metrics --network scalable-32 --data fashion-mnist --num-images 10000
      ganprint scalable metrics --network run/ --data celeba_30k.zip --num-images 30000 \\
          --fid-weights ~/pt_inception-2015-12-05-6726825d.pth
      ganprint scalable metrics --network scalable-32 --num-images 10000          # bit accuracy only
    """
    from ..fid import load_feature_network
    from ..io import atomic_write_json
    from ..scalable.metrics import compute_metrics, describe_latent_share

    if output is not None and Path(output).exists():
        raise GanprintError(f"{output} already exists; choose another --output")
    feature_net = load_feature_network(fid_weights, device) if data is not None else None
    net = _load(network, device)
    result = compute_metrics(net, num_images, data, feature_net, batch_size=batch_size, seed=seed, progress=not quiet)
    record = {"network": str(network), "data": data, **result.to_dict()}
    if output is not None:
        atomic_write_json(output, record)
    if as_json:
        click.echo(json.dumps(record))
        return
    parts = [f"{num_images} images"]
    if result.fid is not None:
        parts.append(f"FID {result.fid:.3f} ({result.feature_network})")
    if result.bit_accuracy is not None:
        parts.append(f"bit accuracy {result.bit_accuracy:.4f} (float), {result.bit_accuracy_uint8:.4f} (8-bit; "
                     f"worst bit {result.worst_bit_uint8:.3f}, 10th percentile {result.p10_bit_uint8:.3f})")
    if result.latent_share is not None:
        parts.append(describe_latent_share(result.latent_share))
    click.echo("; ".join(parts))


# ----------------------------------------------------------------------------------------- detect
@scalable.command()
@_network_option(" Needs the decoder: not an exported model.")
@opt.data_dir()
@opt.output_dir()
@click.option("--expected", default=None, metavar="BITS|HEX|FILE",
              help="Expected fingerprint, or an embedded_fingerprints.txt (or its folder) to compare per image.")
@opt.fpr
@opt.batch_size
@opt.strict
@opt.overwrite
@opt.device
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@opt.quiet
def detect(network, data_dir, output_dir, expected, false_positive_rate, batch_size, strict, overwrite, device, as_json,
           quiet) -> None:  # fmt: skip
    """Read fingerprints from a folder of images with the network's decoder: writes
    detected_fingerprints.txt, and with --expected a per-image report (bit accuracy, p-value,
    verdict) and a summary; the same files as `ganprint codec detect`.

    \b
    Examples:
      ganprint scalable detect --network scalable-32 --data-dir out/ --output-dir det/ \\
          --expected out/embedded_fingerprints.txt
      ganprint scalable detect --data-dir suspicious/ --output-dir det/ --expected 0x3f9a...
    """
    from ..scalable.detect import detect as detect_images

    net = _load(network, device)
    summary = detect_images(net, data_dir, output_dir, expected=expected, false_positive_rate=false_positive_rate,
                            batch_size=batch_size, strict=strict, overwrite=overwrite, progress=not quiet)  # fmt: skip
    echo_detect_summary(summary, false_positive_rate, as_json)


# ----------------------------------------------------------------------------------------- export
@scalable.command()
@_network_option()
@click.option("--fingerprint", "--watermark", required=True, metavar="BITS|HEX|random",
              help="The model's fingerprint: 0/1 characters, hexadecimal, or 'random' (a fresh secret one).")
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Folder for config.json + model.safetensors.")
@opt.overwrite
@opt.device
def export(network, fingerprint, output, overwrite, device) -> None:
    """Make a standalone fingerprinted generator: the code's styles are folded into the convolution
    weights, so the model has no fingerprint input and its images equal G(z, c). Ship it; keep the
    full network (with the decoder) to detect.

    \b
    Examples:
      ganprint scalable export --network scalable-32 --fingerprint random --output model-a/
      ganprint scalable export --network run/ --fingerprint 0x3f9a... --output model-3f9a/
      ganprint scalable generate --network model-a/ --seeds 0-15 --output-dir model-a-images/
    """
    from ..fingerprints import bits_to_hex
    from ..scalable.export import export_to_folder

    net = _load(network, device)
    if fingerprint == "random":
        n = net.config.fingerprint_size
        value = secrets.randbits(n)
        fingerprint = "".join(str((value >> (n - 1 - i)) & 1) for i in range(n))
    exported = export_to_folder(net, fingerprint, output, overwrite=overwrite)
    click.echo(f"wrote {output}: fingerprinted generator, fingerprint {bits_to_hex(exported.fingerprint)}")


# ------------------------------------------------------------------------------------ tune-decoder
@scalable.command("tune-decoder")
@_network_option()
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Folder for the tuned network.")
@click.option("--kimg", type=click.FloatRange(min=0, min_open=True), default=40.0, show_default=True,
              help="Thousands of generated images to train F on.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.001, show_default=True,
              help="Adam learning rate of F.")
@click.option("--batch", "--batch-size", "batch_size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per step.")
@opt.augment
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the codes, latents and noise of every step.")
@opt.overwrite
@opt.device
@opt.quiet
def tune_decoder(network, output, kimg, lr, batch_size, augment, seed, overwrite, device, quiet) -> None:
    """Train the decoder F alone on the network's frozen generator, on images rounded to 8 bits as
    PNGs store them: F catches up with the averaged generator that snapshots keep. The generator is
    unchanged, so fingerprinted models exported before stay valid. Prints the 8-bit bit accuracy on
    1,024 fresh codes before and after. Pass the training run's --augment for an immunized network.

    \b
    Examples:
      ganprint scalable tune-decoder --network runs/00000-scalable-cpu32-32px-128b --output scalable-tuned/
      ganprint scalable tune-decoder --network run/ --output tuned/ --kimg 80 --augment default
    """
    from ..scalable.tune_decoder import tune_to_folder

    tuning = tune_to_folder(network, output, overwrite=overwrite, device=device, kimg=kimg, lr=lr,
                            batch_size=batch_size, seed=seed, augment=augment, progress=not quiet)  # fmt: skip
    line = f"wrote {output}: decoder tuned for {kimg:g} kimg ({tuning.steps} steps); 8-bit bit accuracy " \
           f"{tuning.bit_accuracy_before:.4f} -> {tuning.bit_accuracy_after:.4f}"
    if tuning.augmented_after is not None:
        line += f"; through the perturbations {tuning.augmented_before:.4f} -> {tuning.augmented_after:.4f}"
    click.echo(line)


# ------------------------------------------------------------------------------------------- info
@scalable.command()
@click.argument("network", default=DEFAULT_NETWORK)
def info(network) -> None:
    """Describe a network: kind, resolution, fingerprint size, parts and parameter counts.

    \b
    Example:
      ganprint scalable info scalable-32
    """
    from ..stylegan import count_parameters

    net = _load(network, "cpu")
    record = {**net.config_dict(), "generator_parameters": count_parameters(net.G)}
    if net.F is not None:
        record["decoder_parameters"] = count_parameters(net.F)
    click.echo(json.dumps(record, indent=2))
