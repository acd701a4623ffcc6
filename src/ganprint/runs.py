"""Numbered run folders and training logs, in the StyleGAN3 manner.

    <output_dir>/00003-codec-32px-100b/
        options.json        every option of the run
        stats.jsonl         one JSON object per log interval
        events.out.tfevents TensorBoard scalars
        checkpoint.pt       the latest resume checkpoint (replaced atomically)
        snapshot-000500/    inference weights (config.json + model.safetensors)
        grid-000500.png     image grid at that snapshot
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from .errors import GanprintError
from .io import atomic_write_json

_RUN = re.compile(r"^(\d{5})-")


def new_run_dir(output_dir: str | os.PathLike, description: str) -> Path:
    """Create `<output_dir>/<NNNNN>-<description>` with the next free number."""
    root = Path(output_dir)
    if root.exists() and not root.is_dir():
        raise GanprintError(f"{root}: output path exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _RUN.match(p.name))]
    number = max(numbers, default=-1) + 1
    while True:  # another process may take the same number at the same moment
        run_dir = root / f"{number:05d}-{description}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            number += 1


def check_room_for_checkpoint(run_dir: Path, *items) -> None:
    """Refuse a run whose first checkpoint cannot fit on its disk: 4 bytes per weight of each network
    and 8 per parameter an (Adam) optimizer keeps, a lower bound of checkpoint.pt's size."""
    import torch

    from .limits import check_free_space

    needed = 0
    for item in items:
        if isinstance(item, torch.nn.Module):
            needed += 4 * sum(t.numel() for t in item.state_dict().values())
        elif isinstance(item, torch.optim.Optimizer):
            needed += 8 * sum(p.numel() for group in item.param_groups for p in group["params"])
    check_free_space(run_dir, needed, "the run's checkpoint")


class StatsLog:
    """Appends scalars to stats.jsonl and, when tensorboard is installed, to TensorBoard."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "stats.jsonl"
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir))
        except ImportError:  # TensorBoard is optional; the JSONL log always exists
            pass

    def write(self, step: int, values: dict[str, float]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def truncate_after(self, step: int) -> None:
        """On resume, drop the lines written after the checkpoint so the log has no duplicates."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines() if _step_of(line) <= step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62


def write_options(run_dir: Path, options: dict) -> None:
    atomic_write_json(run_dir / "options.json", options)


def load_run_options(run_dir: str | os.PathLike, kind: str, options_class, what: str, legacy: dict | None = None):
    """The options (an `options_class`) of an earlier run of `kind` from its options.json, for
    --resume; `what` names the kind of run in errors, e.g. "an unconditional GAN". `legacy`: values
    of options added after older runs were made, used where options.json lacks them (a dict value
    fills the missing keys of a saved dict, e.g. the network config)."""
    path = Path(run_dir) / "options.json"
    if not path.is_file():
        raise GanprintError(f"{run_dir}: not a training run folder (no options.json)")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GanprintError(f"{path}: unreadable run options ({exc.__class__.__name__})") from None
    if not isinstance(saved, dict) or saved.get("kind") != kind:
        raise GanprintError(f"{run_dir}: not {what} run (options.json of another kind)")
    for key, value in (legacy or {}).items():
        if isinstance(value, dict) and isinstance(saved.get(key), dict):
            saved[key] = {**value, **saved[key]}
        else:
            saved.setdefault(key, value)
    names = {f.name for f in dataclasses.fields(options_class)}
    try:
        return options_class(**{k: v for k, v in saved.items() if k in names})
    except TypeError as exc:
        raise GanprintError(f"{path}: unreadable run options ({exc})") from None
