"""Unconditional StyleGAN2-style GANs: the generative model that artificial fingerprinting
(ICCV 2021) fingerprints through its training data. Networks from `ganprint.stylegan` (c_dim = 0);
training loop in `gan.train`, generation in `gan.generate`."""

from .network import PRESETS, GanConfig, GanNetwork

__all__ = ["PRESETS", "GanConfig", "GanNetwork"]
