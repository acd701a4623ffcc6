"""Artificial fingerprinting (Yu et al., ICCV 2021): an encoder hides a fingerprint in images and a
decoder reads it back, also from the outputs of any generative model trained on those images."""

from .codec import FingerprintCodec
from .config import CodecConfig

__all__ = ["CodecConfig", "FingerprintCodec"]
