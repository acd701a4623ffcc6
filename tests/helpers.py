"""Helpers shared by test modules: `from helpers import ...` (pytest puts tests/ on sys.path, as
conftest.py lives there without an __init__.py)."""

import json

import torch


def cli_exit_code(args) -> int:
    """The exit code of `ganprint ARGS` run in this process (its output stays for capsys)."""
    from ganprint.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code
    return 0


def checkpoint_tensors(run) -> tuple[dict, int]:
    """Every tensor of a training run's checkpoint.pt (networks and optimizer states) by a dotted
    name, and the checkpoint's step."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    out = {}
    for key, value in state.items():
        if key.startswith("opt_"):
            for pid, s in value["state"].items():
                out.update({f"{key}.{pid}.{k}": v for k, v in s.items() if torch.is_tensor(v)})
        elif isinstance(value, dict) and key != "config":
            out.update({f"{key}.{k}": v for k, v in value.items()})
    return out, state["step"]


# ----------------------------------------------------------------------------- StyleGAN2-style trainers


def check_resume_reproduces_an_uninterrupted_run(train, load_run_options, options, tmp_path) -> None:
    """A run stopped after step 3 and resumed ends tensor for tensor as the uninterrupted run.
    `options(output_dir)`: the options of a 6-step run with a stats line every 2 steps."""
    full = train(options(tmp_path / "a"))
    half = train(options(tmp_path / "b"), should_stop=lambda step: step == 3)
    assert checkpoint_tensors(half)[1] == 3
    resumed = train(load_run_options(half), resume=half)
    assert resumed == half
    a, step_a = checkpoint_tensors(full)
    b, step_b = checkpoint_tensors(resumed)
    assert step_a == step_b == 6 and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(line)["step"] for line in (resumed / "stats.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4, 6]  # the stop at step 3 logged its partial tick, then the run went on once


def check_seed_decides_the_run(train, options) -> None:
    """The same seed gives the same weights, another seed others. `options(seed)`: a short run's options."""
    a = checkpoint_tensors(train(options(seed=1)))[0]
    b = checkpoint_tensors(train(options(seed=1)))[0]
    c = checkpoint_tensors(train(options(seed=2)))[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
