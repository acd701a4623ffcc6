"""StyleGAN2-style generator, discriminator and decoder, shared by scalable fingerprinting (c_dim > 0)
and by unconditional GAN training (c_dim == 0). See `networks.py`."""

from .networks import (
    Decoder,
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    count_parameters,
    modulated_conv2d,
)

__all__ = [
    "Decoder",
    "Discriminator",
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "count_parameters",
    "modulated_conv2d",
]
