"""Fingerprint transfer end to end (Yu et al., ICCV 2021): fingerprint a training set with ONE
fingerprint, train a GAN on it, generate images, and read the fingerprint back from them.

    report = run_transfer(TransferOptions(data="fashion-mnist:train", output_dir="transfer/",
                                          num_images=1000, kimg=160))

Steps and the equivalent commands (docs/transfer.md):
    1. fingerprint   ganprint codec embed --data_dir DATA --output_dir OUT/fingerprinted --fingerprint HEX
    2. train         ganprint gan train --data OUT/fingerprinted/fingerprinted_images --total-kimg K
    3. generate      ganprint gan generate --network OUT/gan/<run> --num-images N --output-dir OUT/generated
       and detect    ganprint codec detect --data_dir OUT/generated --output_dir OUT/detection --expected HEX

Files in the output folder:
    fingerprint.txt                 the fingerprint (hex and bits)
    fingerprinted/                  the fingerprinted training set (codec embed's files)
    gan/00000-gan-.../              the GAN's run folder
    generated/                      N generated PNGs + generated_images.csv
    detection/                      detected_fingerprints.txt, detection_report.csv (per image)
    transfer.png                    rows: real, fingerprinted, amplified difference, generated
    curve.png                       bit accuracy of every GAN snapshot (when the fingerprint appeared)
    report.json, report.md          the statistics below and the verdict

Statistics of an image set against the fingerprint: mean bit accuracy; the consensus p-value (the
verdict's test, below); the pooled p-value (all matching bits of all images as one binomial test, as
`codec detect`); per-image p-values (median, and how many pass the false-positive rate).

Why the verdict uses the consensus test and not the pooled one: a decoder has a bias on any family
of images (it reads the same bits on most images of one GAN, whatever that GAN learned), so the bits
of one set are not independent and the pooled p-value is wildly optimistic: a GAN trained on
fingerprint B's data, or an early clean GAN, "matches" A with pooled p = 10^-70 .. 10^-1500
(docs/transfer.md). The consensus test takes the majority bit of the set at each position and counts
how many of the L majority bits equal the fingerprint: whatever the decoder's bias on a family of
images, it was fixed before the secret fingerprint was drawn at random, so under "no transfer" the
count is Binomial(L, 1/2). It reaches p = 2^-L when every majority bit matches (7.9e-31 for 100 bits).

Two controls put the generated images' numbers in context: clean real images (the decoder must read
chance: the fingerprint comes from the data, not from the decoder) and fingerprinted training images
(the codec's own ceiling, what a perfect GAN would reach).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .codec.folders import DETECTED_FILE, IMAGES_DIR, detect_folder, embed_folder
from .codec.importing import load_codec
from .data import iterate_batches, load_image, open_source, pil_to_tensor
from .detection import DEFAULT_FALSE_POSITIVE_RATE, NullModel
from .errors import GanprintError
from .fingerprints import bits_to_hex, bits_to_str, parse_fingerprint, random_fingerprints, read_fingerprint_file
from .io import atomic_path, atomic_write_json, atomic_write_text
from .pretrained import CODEC_32
from .stats import neg_log10_p_value, p_value
from .visualize import amplified_residual

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PICTURE = "transfer.png"
CURVE = "curve.png"


@dataclass
class TransferOptions:
    data: str  # training images (any ganprint.data spec, e.g. "fashion-mnist:train")
    output_dir: str  # folder for everything (see the module docstring)
    num_images: int = 1000  # images generated and tested
    kimg: float = 160.0  # GAN training length in thousands of images (cpu32 + codec-32: enough for 0.99)
    fingerprint: str | None = None  # bits or hex; default: random bits drawn from `seed`
    codec: str = CODEC_32  # shipped name, model folder or original *_encoder.pth
    preset: str = "cpu32"  # GAN networks and training defaults (gan.network.PRESETS)
    seed: int = 0  # fingerprint draw, GAN training, generation seeds start here
    control_images: int = 1000  # clean and fingerprinted real images scored as controls
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE
    batch_size: int = 64
    device: str = "auto"
    overwrite: bool = False  # replace an earlier transfer run in output_dir
    progress: bool = True
    gan: dict | None = None  # further GanTrainOptions fields (e.g. network, snapshot_kimg, batch_size)


# ----------------------------------------------------------------------------- statistics


def set_statistics(bits: torch.Tensor, expected: torch.Tensor,
                   false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE) -> dict:  # fmt: skip
    """Statistics of decoded bits (N, L) against one fingerprint (L,) under fair coins."""
    if bits.ndim != 2 or bits.shape[0] == 0:
        raise GanprintError("no images to score")
    n, length = bits.shape
    matches = ((bits > 0.5) == (expected > 0.5)).sum(dim=1)
    null = NullModel.fair(length)
    threshold = null.threshold(false_positive_rate)
    per_image_p = [null.p_value(int(k)) for k in matches]
    total = int(matches.sum())
    accuracy = matches.float() / length
    share_ones = (bits > 0.5).float().mean(dim=0)  # per bit position, over the images
    majority_matches = torch.where(expected > 0.5, share_ones > 0.5, share_ones < 0.5)  # a tie is no match
    consensus = int(majority_matches.sum())
    return {
        "images": n, "bits_per_image": length,
        "mean_bit_accuracy": total / (n * length),
        "bit_accuracy_std": float(accuracy.std()) if n > 1 else 0.0,
        "min_bit_accuracy": float(accuracy.min()),
        "consensus_matches": consensus, "consensus_p_value": p_value(consensus, length),
        "consensus_neg_log10_p": neg_log10_p_value(consensus, length),
        "pooled_p_value": p_value(total, n * length), "pooled_neg_log10_p": neg_log10_p_value(total, n * length),
        "median_p_value": statistics.median(per_image_p),
        "detected": int((matches >= threshold).sum()), "detected_fraction": float((matches >= threshold).float().mean()),
        "false_positive_rate": false_positive_rate,
    }  # fmt: skip


def read_detected_bits(detection_dir: str | os.PathLike) -> tuple[list[str], torch.Tensor]:
    """(names, bits (N, L)) from a detected_fingerprints.txt written by `codec detect`."""
    table = read_fingerprint_file(Path(detection_dir) / DETECTED_FILE)
    names = sorted(table)
    return names, torch.stack([table[name] for name in names])


def verdict(generated: dict, clean: dict | None = None) -> str:
    """One sentence: does the generated set carry the fingerprint (consensus test at the set's
    false-positive rate), and is the clean control at chance."""
    fpr, length = generated["false_positive_rate"], generated["bits_per_image"]
    numbers = (f"mean bit accuracy {generated['mean_bit_accuracy']:.4f}, {generated['consensus_matches']}/{length} "
               f"majority bits match, consensus p = {generated['consensus_p_value']:.3g}")  # fmt: skip
    if generated["consensus_p_value"] <= fpr:
        text = (f"fingerprint transferred: the generated images carry it ({numbers}; "
                f"{generated['detected']}/{generated['images']} images detected one by one at FPR {fpr:g})")  # fmt: skip
    else:
        text = f"fingerprint NOT detected in the generated images ({numbers})"
        if 0.5**length > fpr:
            text += f"; {length} bits cannot reach p <= {fpr:g}: choose a larger false-positive rate"
    if clean is not None and clean["consensus_p_value"] < 0.01:
        text += ("; warning: the decoder also matches the fingerprint on clean images (consensus p = "
                 f"{clean['consensus_p_value']:.3g}): compare with the clean control, or calibrate the decoder")  # fmt: skip
    return text


# ----------------------------------------------------------------------------- steps


def choose_fingerprint(text: str | None, length: int, seed: int = 0) -> torch.Tensor:
    """The given fingerprint (bits or hex), or `length` random bits drawn from `seed`."""
    if text:
        return parse_fingerprint(text, length)
    return random_fingerprints(1, length, torch.Generator().manual_seed(seed))[0]


def first_images(spec: str | os.PathLike, resolution: int, count: int) -> torch.Tensor:
    """The first `count` readable images of a source, (n, 3, R, R) in [0, 1]."""
    out, taken = [], 0
    for _names, images in iterate_batches(open_source(spec), resolution, min(count, 256)):
        out.append(images[: count - taken])
        taken += len(out[-1])
        if taken >= count:
            break
    return torch.cat(out)


def control_statistics(codec, spec: str, fingerprint: torch.Tensor, count: int, fpr: float) -> dict[str, dict]:
    """Clean real images and the same images fingerprinted (as saved: 8-bit), scored against the fingerprint."""
    clean = first_images(spec, codec.config.resolution, count).to(codec.device)
    marked = torch.round(codec.embed(clean, fingerprint.expand(len(clean), -1)) * 255) / 255
    score = lambda x: set_statistics((codec.decode_logits(x) > 0).float(), fingerprint, fpr)  # noqa: E731
    return {"clean_real": score(clean), "fingerprinted_real": score(marked)}


def save_picture(codec, data: str, fingerprint: torch.Tensor, generated_dir: Path, path: Path, count: int = 8) -> None:
    """Rows: real images, fingerprinted, their amplified difference, generated images."""
    from .stylegan.training import save_grid  # imports torchvision: only when a picture is made

    real = first_images(data, codec.config.resolution, count).to(codec.device)
    marked = torch.round(codec.embed(real, fingerprint.expand(len(real), -1)) * 255) / 255
    files = sorted(generated_dir.glob("*.png"))[: len(real)]
    generated = torch.stack([pil_to_tensor(load_image(f)) for f in files]).to(real.device)
    if len(generated) < len(real):  # fewer generated images than columns: pad with white
        generated = torch.cat([generated, torch.ones_like(real[len(generated) :])])
    rows = torch.cat([real, marked, amplified_residual(real, marked), generated])
    save_grid(rows, path, nrow=len(real))


def snapshot_curve(run_dir: str | os.PathLike, codec, fingerprint: torch.Tensor, num_images: int = 1000,
                   seed: int = 0, batch_size: int = 256, progress: bool = True) -> list[dict]:  # fmt: skip
    """When does the fingerprint appear? For every network-snapshot-* of a GAN run folder, in training
    order: its kimg and the statistics (`set_statistics`) of `num_images` generated images (seeds
    seed.., rounded to 8 bits as a saved PNG would be) against `fingerprint`."""
    from .gan.generate import draw
    from .gan.network import GanNetwork

    snapshots = sorted(Path(run_dir).glob("network-snapshot-*"))
    if not snapshots:
        raise GanprintError(f"{run_dir}: no network-snapshot-* folders (is it a GAN run folder?)")
    rows = []
    for snapshot in tqdm(snapshots, desc="snapshots", unit="snapshot", disable=not progress, dynamic_ncols=True):
        network = GanNetwork.from_pretrained(snapshot, device=codec.device)
        if network.config.resolution != codec.config.resolution:
            raise GanprintError(f"{snapshot}: makes {network.config.resolution} px images; the codec reads "
                                f"{codec.config.resolution} px")  # fmt: skip
        bits = []
        for start in range(seed, seed + num_images, batch_size):
            z = torch.stack([draw(network, s)[0] for s in range(start, min(start + batch_size, seed + num_images))])
            images = torch.round(network.generate(z) * 255) / 255
            bits.append((codec.decode_logits(images) > 0).float().cpu())
        suffix = snapshot.name.rsplit("-", 1)[-1]  # network-snapshot-000160: 160 kimg
        kimg = int(suffix) if suffix.isdigit() else None
        rows.append({"snapshot": snapshot.name, "kimg": kimg, **set_statistics(torch.cat(bits), fingerprint)})
    return rows


def plot_curves(curves: dict[str, list[dict]], path: str | os.PathLike, title: str = "") -> None:
    """Mean bit accuracy against kimg, one line per run (e.g. {"GAN-A vs A": rows, ...})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for label, rows in curves.items():
        ax.plot([r["kimg"] for r in rows], [r["mean_bit_accuracy"] for r in rows], marker="o", ms=3, label=label)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training images seen (kimg)")
    ax.set_ylabel("mean bit accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def run_transfer(options: TransferOptions) -> dict:
    """Fingerprint, train, generate, detect, report (see the module docstring). Returns the report."""
    from .gan.generate import generate_images
    from .gan.network import GanNetwork
    from .gan.train import GanTrainOptions, train_gan

    o = options
    out = Path(o.output_dir)
    if (out / REPORT_JSON).exists() and not o.overwrite:
        raise GanprintError(f"{out / REPORT_JSON} already exists; choose another --output_dir or pass --overwrite")
    if o.num_images < 1:
        raise GanprintError(f"--num-images must be at least 1, got {o.num_images}")
    codec = load_codec(o.codec, device=o.device)
    if codec.encoder is None or codec.decoder is None:
        raise GanprintError(f"{o.codec}: the transfer needs a full codec (encoder and decoder)")
    fingerprint = choose_fingerprint(o.fingerprint, codec.config.fingerprint_length, o.seed)
    open_source(o.data)  # a bad dataset fails here, before any work
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "fingerprint.txt", f"{bits_to_hex(fingerprint)}\n{bits_to_str(fingerprint)}\n")

    # 1. fingerprint the training set
    embed_folder(codec, o.data, out / "fingerprinted", fingerprint=fingerprint, batch_size=o.batch_size,
                 overwrite=o.overwrite, progress=o.progress)  # fmt: skip
    # 2. train the GAN on it
    gan_options = {"snapshot_kimg": max(o.kimg / 8, 1.0), **(o.gan or {})}
    run_dir = train_gan(GanTrainOptions(
        data=str(out / "fingerprinted" / IMAGES_DIR), output_dir=str(out / "gan"), preset=o.preset,
        total_kimg=o.kimg, seed=o.seed, device=o.device, progress=o.progress, **gan_options,
    ))  # fmt: skip
    # 3. generate and detect
    network = GanNetwork.from_pretrained(run_dir, device=o.device)
    if network.config.resolution != codec.config.resolution:
        raise GanprintError(f"the GAN makes {network.config.resolution} px images; the codec reads {codec.config.resolution} px")
    seeds = list(range(o.seed, o.seed + o.num_images))
    generate_images(network, seeds, out / "generated", batch_size=o.batch_size, overwrite=o.overwrite,
                    progress=o.progress, network_name=str(run_dir))  # fmt: skip
    detect_folder(codec, out / "generated", out / "detection", expected=fingerprint, false_positive_rate=o.false_positive_rate,
                  batch_size=o.batch_size, overwrite=o.overwrite, progress=o.progress)  # fmt: skip
    _names, bits = read_detected_bits(out / "detection")

    sets = {"generated": set_statistics(bits, fingerprint, o.false_positive_rate)}
    sets.update(control_statistics(codec, o.data, fingerprint, o.control_images, o.false_positive_rate))
    save_picture(codec, o.data, fingerprint, out / "generated", out / PICTURE)
    curve = snapshot_curve(run_dir, codec, fingerprint, min(o.num_images, 500), o.seed, o.batch_size, progress=False)
    plot_curves({"generated vs the fingerprint": curve}, out / CURVE, title=f"GAN {run_dir.name}, codec {o.codec}")
    report = {
        "options": dataclasses.asdict(o), "fingerprint_hex": bits_to_hex(fingerprint), "codec": str(o.codec),
        "gan_run": str(run_dir), "sets": sets, "verdict": verdict(sets["generated"], sets["clean_real"]),
        "picture": PICTURE, "curve_picture": CURVE,
        "curve": [{"kimg": r["kimg"], "mean_bit_accuracy": r["mean_bit_accuracy"]} for r in curve],
    }  # fmt: skip
    atomic_write_json(out / REPORT_JSON, report)
    atomic_write_text(out / REPORT_MD, report_markdown(report))
    return report


def report_markdown(report: dict) -> str:
    """The report as a short Markdown page."""
    lines = [
        "# Fingerprint transfer", "",
        f"Fingerprint `{report['fingerprint_hex']}` (codec `{report['codec']}`); GAN run `{report['gan_run']}`.", "",
        f"**Verdict:** {report['verdict']}", "",
        "| images | n | mean bit accuracy | majority bits matching | consensus p | pooled p (optimistic) | median per-image p | detected |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    labels = {"generated": "generated by the GAN", "clean_real": "clean real (control)",
              "fingerprinted_real": "fingerprinted real (codec ceiling)"}  # fmt: skip
    for key, s in report["sets"].items():
        p = s["pooled_p_value"]
        pooled_text = f"{p:.3g}" if p > 0 else f"10^-{s['pooled_neg_log10_p']:.0f}"  # below the smallest float
        lines.append(f"| {labels.get(key, key)} | {s['images']} | {s['mean_bit_accuracy']:.4f} | "
                     f"{s['consensus_matches']}/{s['bits_per_image']} | {s['consensus_p_value']:.3g} | {pooled_text} | "
                     f"{s['median_p_value']:.3g} | {s['detected']}/{s['images']} |")  # fmt: skip
    lines += ["", f"![real, fingerprinted, amplified difference, generated]({report['picture']})", ""]
    if report.get("curve"):
        points = ", ".join(f"{r['kimg']}: {r['mean_bit_accuracy']:.3f}" for r in report["curve"])
        lines += [f"Bit accuracy along training (kimg: accuracy): {points}", "",
                  f"![bit accuracy of every snapshot]({report['curve_picture']})", ""]  # fmt: skip
    return "\n".join(lines)

