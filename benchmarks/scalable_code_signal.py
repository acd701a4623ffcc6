"""Where a scalable generator puts its code, and what JPEG and noise leave of it.

The code's signal in an image is what changes when only the code changes: s = G(z, c) - G(z, c')
for the same latent z and two random codes (8-bit images, as saved). For each model it prints:

  signal RMS       the RMS of s / sqrt(2), the per-image size of one code's trace (images in [0, 1])
  energy Y/Cb/Cr   the share of the signal's energy in luminance and in the two colour channels
  kept by JPEG     the projection of JPEG(G(z, c)) - JPEG(G(z, c')) on s, per channel: 1 means the
                   compression leaves the code's trace where it was
  JPEG change      the RMS of JPEG(G(z, c)) - G(z, c): what the compression adds, next to the signal
  low frequencies  the share of the signal's energy below a quarter of the Nyquist frequency
  bit accuracy     clean, after JPEG --quality, after Gaussian noise --noise (the issue's attacks)

Then, for each model, what fewer bits would buy with no training at all: codes made of an L/K-bit
message repeated K times, read by averaging the decoder's K logits of each message bit (what
`ganprint codec fold` does for a codec; a generator trained for it would do better).

Usage: python benchmarks/scalable_code_signal.py [--model scalable-32 --model scalable-32-immunized]
           [--count 256] [--quality 75] [--noise 0.05] [--seed 0] [--fold 2 --fold 4 ...]
"""

from __future__ import annotations

import argparse

import torch

from ganprint.attacks import ATTACKS
from ganprint.errors import GanprintError
from ganprint.scalable.network import ScalableNetwork, quantize_unit

# ITU-R BT.601 RGB -> Y, Cb, Cr (the transform JPEG uses), rows for Y, Cb, Cr.
TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.1687, -0.3313, 0.5], [0.5, -0.4187, -0.0813]])


def ycbcr(images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,nchw->nkhw", TO_YCBCR, images)


def per_channel(x: torch.Tensor) -> str:
    return "/".join(f"{v:.2f}" for v in x.tolist())


def measure(net: ScalableNetwork, count: int, quality: float, noise: float, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(count, net.config.z_dim, generator=g)
    c, c_other = ((torch.rand(2, count, net.config.fingerprint_size, generator=g) < 0.5).float()).unbind(0)
    a, b = quantize_unit(net.generate(z, c)), quantize_unit(net.generate(z, c_other))
    signal = ycbcr(a - b)
    energy = signal.pow(2).sum(dim=(0, 2, 3))
    ja, jb = ATTACKS["jpeg"](a, quality), ATTACKS["jpeg"](b, quality)
    kept = (ycbcr(ja - jb) * signal).sum(dim=(0, 2, 3)) / energy
    power = torch.fft.fft2(signal).abs().pow(2)
    f = torch.fft.fftfreq(a.shape[-1]).abs()
    low = (power * ((f[:, None] ** 2 + f[None, :] ** 2).sqrt() < 0.125)).sum(dim=(0, 2, 3)) / power.sum(dim=(0, 2, 3))
    noisy = quantize_unit(ATTACKS["noise"](a, noise, seed=seed))

    def accuracy(images: torch.Tensor) -> float:
        return ((net.decode_logits(images) > 0).float() == c).float().mean().item()

    rms = lambda x: x.pow(2).mean().sqrt().item()  # noqa: E731
    return {"rms": rms(a - b) / 2**0.5, "jpeg_rms": rms(ja - a), "energy": energy / energy.sum(), "kept": kept,
            "low": low, "clean": accuracy(a), "jpeg": accuracy(quantize_unit(ja)), "noise": accuracy(noisy)}  # fmt: skip


def folded_accuracy(net: ScalableNetwork, count: int, factor: int, quality: float, noise: float, seed: int) -> dict:
    """Bit accuracy of L/factor-bit messages, each bit repeated `factor` times in the code."""
    g = torch.Generator().manual_seed(seed)
    bits = net.config.fingerprint_size // factor
    z = torch.randn(count, net.config.z_dim, generator=g)
    message = (torch.rand(count, bits, generator=g) < 0.5).float()
    images = quantize_unit(net.generate(z, message.repeat(1, factor)))
    attacked = {"clean": images, "jpeg": quantize_unit(ATTACKS["jpeg"](images, quality)),
                "noise": quantize_unit(ATTACKS["noise"](images, noise, seed=seed))}  # fmt: skip
    out = {}
    for name, x in attacked.items():
        logits = net.decode_logits(x)[:, : bits * factor].view(count, factor, bits).mean(1)
        out[name] = ((logits > 0).float() == message).float().mean().item()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="scalable network (name or folder), repeatable")
    parser.add_argument("--count", type=int, default=256, help="latents (image pairs) per model")
    parser.add_argument("--quality", type=float, default=75.0)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fold", type=int, action="append", help="repetition factors [default: 1 2 4 8 16]")
    args = parser.parse_args()
    names = args.model or ["scalable-32", "scalable-32-immunized"]
    nets = {name: ScalableNetwork.from_pretrained(name) for name in names}  # each loaded once for both tables
    print(f"{'model':<24} {'signal RMS':>10} {'JPEG change':>11}  {'energy Y/Cb/Cr':<15} {'kept by JPEG':<15} "
          f"{'low freq.':<15} {'clean':>6} {'JPEG ' + format(args.quality, 'g'):>7} "
          f"{'noise ' + format(args.noise, 'g'):>10}")  # fmt: skip
    for name, net in nets.items():
        r = measure(net, args.count, args.quality, args.noise, args.seed)
        print(f"{name:<24} {r['rms']:>10.4f} {r['jpeg_rms']:>11.4f}  {per_channel(r['energy']):<15} "
              f"{per_channel(r['kept']):<15} {per_channel(r['low']):<15} {r['clean']:>6.3f} {r['jpeg']:>7.3f} "
              f"{r['noise']:>10.3f}")  # fmt: skip
    print(f"\nfolded codes (no training): {'model':<24} {'bits':>5} {'clean':>6} {'JPEG':>6} {'noise':>6}")
    for name, net in nets.items():
        for factor in args.fold or [1, 2, 4, 8, 16]:
            r = folded_accuracy(net, args.count, factor, args.quality, args.noise, args.seed)
            bits = net.config.fingerprint_size // factor
            print(f"{'':<28}{name:<24} {bits:>5} {r['clean']:>6.3f} {r['jpeg']:>6.3f} {r['noise']:>6.3f}")

if __name__ == "__main__":
    try:
        main()
    except GanprintError as e:
        raise SystemExit(f"error: {e}") from None
