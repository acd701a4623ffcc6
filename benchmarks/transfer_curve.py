"""When does a GAN pick up its training data's fingerprint? Bit accuracy against one fingerprint of
every snapshot of one or more GAN run folders, as a table, a JSON file and a plot.

Each snapshot generates the same --num-images seeds; images are rounded to 8 bits (as a saved PNG)
and read by the codec's decoder. A GAN trained on clean data, or on data with another fingerprint,
is the control: its line must stay at 0.5.

Usage:
  python benchmarks/transfer_curve.py --run GAN-A=bench-transfer/gan-A/00000-gan-cpu32-32px \
      --run GAN-clean=bench-transfer/gan-clean/00000-gan-cpu32-32px \
      --fingerprint bench-transfer/data-A/embedded_fingerprints.txt --codec codec-32 --output curve
  (writes curve.json and curve.png; --fingerprint takes bits, hex, or an embedded_fingerprints.txt)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ganprint.codec.importing import load_codec
from ganprint.errors import GanprintError
from ganprint.fingerprints import parse_fingerprint
from ganprint.io import atomic_write_json
from ganprint.transfer import plot_curves, snapshot_curve


def read_fingerprint_arg(text: str, length: int):
    """Bits or hex, or a file whose first line ends with the fingerprint (embedded_fingerprints.txt)."""
    path = Path(text)
    if path.is_file():
        lines = path.read_text().split("\n", 1)
        if not lines[0].strip():
            raise GanprintError(f"{path}: empty")
        text = lines[0].split()[-1]
    return parse_fingerprint(text, length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=RUN_FOLDER (repeatable)")
    parser.add_argument("--fingerprint", required=True, help="bits, hex or an embedded_fingerprints.txt")
    parser.add_argument("--codec", default="codec-32")
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default="transfer-curve", help="writes OUTPUT.json and OUTPUT.png")
    args = parser.parse_args()

    codec = load_codec(args.codec, device=args.device)
    fingerprint = read_fingerprint_arg(args.fingerprint, codec.config.fingerprint_length)
    curves = {}
    for spec in args.run:
        label, sep, folder = spec.partition("=")
        if not sep:
            raise SystemExit(f"--run {spec}: expected LABEL=RUN_FOLDER")
        curves[label] = snapshot_curve(folder, codec, fingerprint, num_images=args.num_images)
        for row in curves[label]:
            print(f"{label:>12}  {row['kimg']:>5} kimg  bit accuracy {row['mean_bit_accuracy']:.4f}  "
                  f"pooled -log10 p {row['pooled_neg_log10_p']:8.1f}  detected {row['detected']}/{row['images']}")  # fmt: skip
    atomic_write_json(f"{args.output}.json", {"codec": args.codec, "num_images": args.num_images, "curves": curves})
    plot_curves(curves, f"{args.output}.png", title=f"codec {args.codec}, {args.num_images} images per snapshot")
    print(f"wrote {args.output}.json and {args.output}.png")


if __name__ == "__main__":
    try:
        main()
    except GanprintError as e:
        raise SystemExit(f"error: {e}") from None
