"""What a `... detect` command prints about a folder it read (a ganprint.codec.folders.DetectSummary)."""

from __future__ import annotations

import dataclasses
import json

import click


def echo_detect_summary(summary, false_positive_rate: float, as_json: bool, **extra) -> None:
    """One JSON line (the summary without per-image rows, plus `extra` keys), or the human lines:
    where the fingerprints are and, with an expected fingerprint, accuracy, p-value and detections."""
    record = {k: v for k, v in dataclasses.asdict(summary).items() if k != "per_image"}
    record["output_dir"] = str(summary.output_dir)
    record.update(extra)
    if as_json:
        click.echo(json.dumps(record))
        return
    click.echo(f"read {summary.images} images; fingerprints in {summary.output_dir / 'detected_fingerprints.txt'}")
    if summary.mean_bit_accuracy is not None:
        click.echo(
            f"mean bit accuracy {summary.mean_bit_accuracy:.4f}; detected at FPR {false_positive_rate:g}: "
            f"{summary.detected}/{summary.images}; per image: {summary.output_dir / 'detection_report.csv'}"
        )
        click.echo(
            f"the set as a whole: consensus p-value {summary.consensus_p_value:.3g} (majority bit right at "
            f"{summary.consensus_matches} positions); pooled p-value {summary.pooled_p_value:.3g} "
            f"(-log10 {summary.pooled_neg_log10_p:.1f}; assumes independent images, optimistic when the "
            "decoder has a bias on them)"
        )
    if getattr(summary, "undecided", 0):
        click.echo(f"{summary.undecided} images: not enough signal to decide (too flat to carry a readable "
                   "fingerprint); left out of the set's p-values")  # fmt: skip
