import os

import numpy as np
import pytest
import torch

# Tests run on the CPU with few threads so that they behave the same on every machine.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_config():
    from ganprint.codec import CodecConfig

    return CodecConfig(resolution=32, fingerprint_length=16, channels=8, message_channels=2)


@pytest.fixture
def tiny_codec(tiny_config):
    from ganprint.codec import FingerprintCodec

    torch.manual_seed(0)
    return FingerprintCodec(tiny_config).eval()


@pytest.fixture
def run_cli(capsys):
    """Runs `ganprint ARGS...` in this process: returns (exit code, stdout, stderr)."""
    from ganprint.cli import main

    def run(*args) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def photo_crops(tmp_path_factory):
    """make(count): a new folder of `count` 32x32 PNGs, random crops of the built-in photos (the same
    images for the same count, and the first n of a larger count are those of count n)."""
    from ganprint.data import open_source

    def make(count: int):
        root = tmp_path_factory.mktemp("photos")
        samples = open_source("samples")
        rng = np.random.default_rng(0)
        for i in range(count):
            x, y = rng.integers(0, 33, size=2)
            samples.image(i % len(samples)).crop((x, y, x + 32, y + 32)).save(root / f"{i:03d}.png")
        return root

    return make
