"""Diffusion-GAN (Wang et al., "Diffusion-GAN: Training GANs with Diffusion", ICLR 2023): D sees every image after
t steps of forward diffusion and is told t; the diffusion length T follows ADA's p. `core` holds the pure math,
`AugmentPipe` (in `pipe`) and `Discriminator` (in `networks`) the upstream-facing classes, imported on first
use as they need upstream's packages."""


def __getattr__(name):
    if name == 'AugmentPipe':
        from .pipe import AugmentPipe
        return AugmentPipe
    if name == 'Discriminator':
        from .networks import Discriminator
        return Discriminator
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
