"""Robustness and secrecy evaluation (docs/robustness.md).

    from ganprint.attacks import parse_attack_levels
    from ganprint.evaluation import codec_subject, run_grid, write_report
    subject = codec_subject("codec-32", data="samples")
    result = run_grid([subject], parse_attack_levels("jpeg,noise,crop:0.9"))
    write_report(result, "robustness/")

Modules: subjects (what is evaluated), grid (attack x strength -> rows), quality (PSNR, SSIM),
report (CSV, JSON, plots, HTML), secrecy (can a classifier see the fingerprint?).
"""

from .grid import COLUMNS, GridResult, run_grid
from .report import write_report
from .secrecy import SecrecyOptions, SecrecyResult, secrecy_test
from .subjects import (
    CodecSubject,
    FolderSubject,
    GeneratorSubject,
    Sample,
    Subject,
    codec_subject,
    folder_subject,
    scalable_subject,
)

__all__ = [
    "COLUMNS",
    "CodecSubject",
    "FolderSubject",
    "GeneratorSubject",
    "GridResult",
    "Sample",
    "SecrecyOptions",
    "SecrecyResult",
    "Subject",
    "codec_subject",
    "folder_subject",
    "run_grid",
    "scalable_subject",
    "secrecy_test",
    "write_report",
]
