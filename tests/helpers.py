"""Helpers shared by test modules: `from helpers import ...` (pytest puts tests/ on sys.path, as
conftest.py lives there without an __init__.py)."""

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganprint.errors import GanprintError


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


def tiny_run_options(options_class, data, out, network: dict, /, **changes):
    """A trainer's options for a 6-step run of tiny networks on the CPU: batch 4, a stats line every
    2 steps, a snapshot every 3, lazy R1 every 2 steps, no progress bar; then `changes` (which may
    replace `network` too)."""
    base = dict(data=str(data), output_dir=str(out), network=dict(network), batch_size=4, total_kimg=0.024,
                tick_kimg=0.008, snapshot_kimg=0.012, r1_interval=2, progress=False, device="cpu")  # fmt: skip
    return options_class(**{**base, **changes})


def check_run_folder(run, kind: str, grids: list[str], network_class):
    """The layout every trainer's run folder has (a tiny_run_options run: snapshots at 0 kimg): options.json
    of `kind`, reals.png, `grids` as 512 px grids, checkpoint.pt, stats.jsonl with TensorBoard events, and a
    snapshot holding the moving-average generator. Returns (options.json, the snapshot's network)."""
    names = {p.name for p in run.iterdir()}
    assert {"options.json", "reals.png", "checkpoint.pt", "stats.jsonl", "network-snapshot-000000",
            *(f"{grid}-000000.png" for grid in grids)} <= names  # fmt: skip
    assert any(n.startswith("events.out.tfevents") for n in names)
    saved = json.loads((run / "options.json").read_text())
    assert saved["kind"] == kind and saved["batch_size"] == 4
    for grid in grids:
        with Image.open(run / f"{grid}-000000.png") as image:
            assert image.size == (512, 512)  # 8x8 images of 16 px, enlarged x4
    net = network_class.from_pretrained(run)  # a run folder resolves to its latest snapshot
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(net.G.state_dict(), state["G_ema"])
    return saved, net


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


def check_resume_refuses_the_checkpoint_of(other, run, train, load_run_options) -> None:
    """Resuming `run` with the checkpoint of `other` (another network configuration) is an error
    before anything is written; then run's own checkpoint is put back."""
    checkpoint_before, options_before = (run / "checkpoint.pt").read_bytes(), (run / "options.json").read_bytes()
    (run / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(GanprintError, match="another configuration"):
        train(load_run_options(run), resume=run)
    assert (run / "options.json").read_bytes() == options_before
    (run / "checkpoint.pt").write_bytes(checkpoint_before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, train, options):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        train(options)  # only process 0 writes the run folder
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def check_two_processes_equal_one(train, options, tmp_path, max_lr: float = 0.01, steps: int = 1) -> None:
    """Two processes under DistributedDataParallel take the steps one process takes with the same global
    batch. `options(output_dir)`: the options of a run of `steps` steps; `max_lr` its largest learning rate.

    Best one step, and the gradients compared (the optimizers' first moments: Adam's beta1 is 0 here), not
    only the weights: a gradient at float-rounding level can have either sign depending on the order
    of the sums (two half batches or one batch, the number of threads), and Adam turns its sign into a
    full learning-rate step, which later steps then amplify. So gradients match to rounding relative to
    each tensor's scale; weights within the bound 2 * lr of such a sign flip, and all but 0.1% of them
    to rounding."""
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), train, options(tmp_path / "ddp")), nprocs=2, join=True)
    (ddp_run,) = (tmp_path / "ddp").iterdir()  # only process 0 made a run folder
    single = train(options(tmp_path / "one"))
    a, step_a = checkpoint_tensors(ddp_run)
    b, step_b = checkpoint_tensors(single)
    assert step_a == step_b == steps
    moments = [k for k in a if k.startswith("opt_") and k.endswith(("exp_avg", "exp_avg_sq"))]
    assert moments and any(k.startswith("opt_D") and b[k].abs().max() > 0 for k in moments)
    for k in a:
        if not a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], msg=k)
        elif k in moments:
            scale = float(b[k].abs().max())
            torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4 * scale + 1e-12, msg=k)
        elif not k.startswith("opt_"):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=2 * max_lr + 1e-5, msg=k)
    weights = [k for k in a if not k.startswith("opt_") and a[k].is_floating_point()]
    loose = sum(int((~torch.isclose(a[k], b[k], rtol=1e-3, atol=1e-4)).sum()) for k in weights)
    assert loose <= 0.001 * sum(a[k].numel() for k in weights), f"{loose} weights differ beyond rounding"


FASHION_TEST_IMAGES = Path(__file__).parent / "data" / "fashion-mnist-test-500.npz"


def fashion_test_images() -> tuple[torch.Tensor, torch.Tensor]:
    """500 Fashion-MNIST test images brought to 32 px as the GANs' training set is (uint8, (N, 3, 32, 32)),
    and their labels."""
    import numpy as np

    from ganprint.data import pil_to_uint8, preprocess

    data = np.load(FASHION_TEST_IMAGES)
    images = [pil_to_uint8(preprocess(Image.fromarray(a).convert("RGB"), 32)) for a in data["images"]]
    return torch.stack(images), torch.from_numpy(data["labels"].astype(np.int64))
