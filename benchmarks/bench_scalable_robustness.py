"""Robustness of immunized scalable fingerprinting networks against the original-style one, at 32x32.

Every network is measured in the same run on its own generated images (the same latents for all,
a random code per image, 8-bit quantised as a PNG stores them) under the attacks of issue 6's
targets: JPEG quality 75, Gaussian noise std 0.05, Gaussian blur sigma 1, center crop 90% resized
back, brightness -30% and +30%, and the model-level ones: 8-bit weights and weight noise of 0.05 of
each tensor's std. Target: bit accuracy >= 0.95 under each, judged on the first network.
Detection at the FPR uses each network's calibrated threshold when it ships one, else the fair-coin
binomial threshold (a 32-bit code needs 30 of its bits right at FPR 1e-6).

With --data (a dataset the networks were trained on) it also prints each network's sample quality:
the Frechet distance of its images to the data in the stand-in feature space (`--fid-weights
stand-in`: comparable between networks here, not with published FIDs).

Usage: python benchmarks/bench_scalable_robustness.py [--network scalable-32-robust
           --network scalable-32-immunized --network scalable-32] [--images 500] [--data ZIP]
           [--report DIR] [--json OUT] [--check]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ganprint.attacks import parse_attack_levels
from ganprint.errors import GanprintError
from ganprint.evaluation import run_grid, write_report
from ganprint.evaluation.subjects import scalable_subject, subject_name
from ganprint.model_attacks import parse_model_attack_levels

ATTACKS = "jpeg:75,noise:0.05,blur:1,crop:0.9,brightness:0.7,brightness:1.3"
MODEL_ATTACKS = "quantize:8,weight_noise:0.05"
DEFAULT_NETWORKS = ["scalable-32-robust", "scalable-32-immunized", "scalable-32"]
TARGET_ACCURACY = 0.95


def frechet_distances(networks: list[str], data: str, count: int, seed: int) -> dict[str, float]:
    """Stand-in Frechet distance of each network's generated images to `data` (lower is closer)."""
    from ganprint.fid import load_feature_network, real_statistics
    from ganprint.scalable.metrics import compute_metrics
    from ganprint.scalable.network import ScalableNetwork

    features = load_feature_network("stand-in")
    loaded = {spec: ScalableNetwork.from_pretrained(spec) for spec in networks}
    resolution = next(iter(loaded.values())).config.resolution
    real = real_statistics(data, count, features, resolution=resolution, seed=seed)  # one pass over the data
    return {spec: compute_metrics(net, count, None, features, seed=seed, real_stats=real).fid
            for spec, net in loaded.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", action="append", default=None, metavar="NAME|PATH",
                        help=f"repeatable; the first is judged (default: {' '.join(DEFAULT_NETWORKS)})")
    parser.add_argument("--images", type=int, default=500, help="generated images per network")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fpr", type=float, default=1e-6)
    parser.add_argument("--data", default=None, help="dataset for the stand-in Frechet distance (optional)")
    parser.add_argument("--fd-images", type=int, default=5000, help="images per network for the Frechet distance")
    parser.add_argument("--report", default=None, help="also write the full report (CSV, JSON, plots, HTML) here")
    parser.add_argument("--json", default=None, help="also write the table as JSON to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 if the judged network misses a target")
    args = parser.parse_args()
    torch.set_num_threads(2)
    networks = args.network or DEFAULT_NETWORKS

    taken: set[str] = set()
    try:
        subjects = [scalable_subject(spec, args.images, args.seed, name=subject_name(spec, taken)) for spec in networks]
    except GanprintError as exc:
        raise SystemExit(f"error: {exc}")
    columns = [s.name for s in subjects]
    judged = columns[0]
    started = time.time()
    levels = parse_attack_levels(ATTACKS) + parse_model_attack_levels(MODEL_ATTACKS)
    result = run_grid(subjects, levels, args.fpr, args.seed, progress=True)
    fd = frechet_distances(networks, args.data, args.fd_images, args.seed) if args.data else {}
    minutes = (time.time() - started) / 60
    if args.report:
        write_report(result, args.report, overwrite=True, title="ganprint robustness: scalable fingerprinting networks")

    bits = {s.name: s.fingerprint_length for s in subjects}
    print("networks: " + ", ".join(f"{n} ({bits[n]} bits)" for n in columns) + f"; judged: {judged}")
    print(f"{args.images} generated images each, 8-bit; {minutes:.1f} min")
    print(f"bit accuracy (detected share at FPR {args.fpr:g}); target >= {TARGET_ACCURACY} per attack; "
          f"PSNR: {judged}'s attacked images (or attacked model's) against its own, dB")  # fmt: skip
    print(f"{'attack':<18}" + "".join(f"{c:>26}" for c in columns) + f"{'target':>9}{'PSNR':>8}")
    table, passed = {}, True
    for label in ["none", *(lv.label for lv in levels)]:
        rows = {c: result.row(c, label) for c in columns}
        ok = rows[judged]["bit_accuracy"] >= TARGET_ACCURACY
        passed &= ok
        table[label] = {**{c: r["bit_accuracy"] for c, r in rows.items()},
                        **{f"{c}_detected": r["detection_rate"] for c, r in rows.items()},
                        **{f"{c}_psnr_attack": r["psnr_attack"] for c, r in rows.items()}}  # fmt: skip
        cells = "".join(f"{r['bit_accuracy']:>19.4f} ({r['detection_rate']:.2f})" for r in rows.values())
        psnr = rows[judged]["psnr_attack"]
        print(f"{label:<18}{cells}{'pass' if ok else 'FAIL':>9}" + (f"{psnr:>8.1f}" if label != "none" else ""))
    if fd:
        table["frechet_distance_stand_in"] = {c: fd[spec] for c, spec in zip(columns, networks)}
        print(f"{'FD (stand-in)':<18}" + "".join(f"{fd[spec]:>26.3f}" for spec in networks))
    if args.json:
        Path(args.json).write_text(json.dumps({"networks": networks, "images": args.images, "judged": judged,
                                               "table": table, "passed": passed, "minutes": minutes}, indent=2))
    print(f"{judged} meets every target" if passed else f"{judged} misses a target")
    if args.check and not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
