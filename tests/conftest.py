import os

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
