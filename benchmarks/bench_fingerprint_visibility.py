"""How visible a codec's fingerprint is to a feature network, and which part of it carries the bits.

Embeds one fingerprint into --count images of a dataset and measures, for variants of the residual:
the Frechet distance under the stand-in network (docs/fid.md) to --count OTHER clean images of the
same dataset, and the decoder's bit accuracy, both on 8-bit images. The first row (clean images
against the other clean ones) is the floor a finite sample gives. Variants:

  with mean shift      the codec's encoder with mean_preserving off (as codec-32 was until 2026-12-01)
  mean-preserving      the encoder with mean_preserving on (codec-32 now)
  luminance part only  the mean-preserving residual's Y part (the same change in R, G and B)
  colour part only     the rest of it (zero luminance)

Usage: python benchmarks/bench_fingerprint_visibility.py [--codec codec-32] [--data fashion-mnist:train]
           [--count 4000] [--seed 1]
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from ganprint import fid
from ganprint.codec.codec import FingerprintCodec
from ganprint.codec.importing import load_codec
from ganprint.data import iterate_batches, open_source
from ganprint.errors import GanprintError

LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601, as JPEG


def load(spec: str, count: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint sets of `count` images: the ones to fingerprint, and the clean reference."""
    source = open_source(spec)
    if len(source) < 2 * count:
        raise GanprintError(f"{spec}: has {len(source)} images, fewer than 2 x --count {count}")
    images = torch.cat([b for _names, b in iterate_batches(source, resolution, 256, order=range(2 * count))])
    return images[:count], images[count:]


def with_setting(codec: FingerprintCodec, mean_preserving: bool) -> FingerprintCodec:
    variant = FingerprintCodec(dataclasses.replace(codec.config, mean_preserving=mean_preserving))
    variant.load_state_dict(codec.state_dict())
    return variant.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codec", default="codec-32")
    parser.add_argument("--data", default="fashion-mnist:train")
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1, help="draws the fingerprint")
    args = parser.parse_args()

    codec = load_codec(args.codec)
    if codec.encoder is None or not hasattr(codec.encoder, "mean_preserving"):
        raise GanprintError(f"{args.codec}: needs a full codec of the ganprint architecture")
    images, reference = load(args.data, args.count, codec.config.resolution)
    bits = torch.randint(0, 2, (codec.config.fingerprint_length,), generator=torch.Generator().manual_seed(args.seed))
    bits = bits.float()
    net = fid.load_feature_network("stand-in")
    reference_features = fid.extract_features(net, [fid.to_uint8(reference)])

    def measure(marked: torch.Tensor) -> tuple[float, float]:
        as_saved = fid.to_uint8(marked.clamp(0, 1))
        distance = fid.frechet_distance(fid.extract_features(net, [as_saved]), reference_features)
        accuracy = ((codec.decode_logits(as_saved.float() / 255) > 0).float() == bits).float().mean().item()
        return distance, accuracy

    shifted = with_setting(codec, False).embed(images, bits)
    preserving = with_setting(codec, True).embed(images, bits)
    residual = preserving - images
    luminance = torch.einsum("c,nchw->nhw", LUMA, residual).unsqueeze(1).expand_as(residual)
    rows = {
        "clean (the floor)": images,
        "with mean shift": shifted,
        "mean-preserving": preserving,
        "luminance part only": images + luminance,
        "colour part only": images + residual - luminance,
    }
    print(f"codec {args.codec}, {args.count} images of {args.data} against {args.count} others; stand-in:0, 8-bit")
    print(f"{'images':22s} {'Frechet':>8s} {'bit acc':>8s} {'RMS':>7s} {'mean shift R/G/B':>24s}")
    for name, marked in rows.items():
        distance, accuracy = measure(marked)
        change = marked.clamp(0, 1) - images
        shift = "/".join(f"{v:+.4f}" for v in change.mean(dim=(0, 2, 3)).tolist())
        print(f"{name:22s} {distance:8.4f} {accuracy:8.4f} {change.pow(2).mean().sqrt().item():7.4f} {shift:>24s}")


if __name__ == "__main__":
    main()
