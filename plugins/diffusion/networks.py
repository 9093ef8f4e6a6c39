"""Diffusion-GAN's timestep-conditioned discriminator (released `diffusion-stylegan2/training/networks.py`):
`--D-class plugins.diffusion.Discriminator`."""

import torch
from torch_utils import persistence
from training.networks import Discriminator as UpstreamDiscriminator

from plugins.common.pipe_output import split_pipe_output


@persistence.persistent_class
class Discriminator(UpstreamDiscriminator):
    """Upstream's D conditioned on the diffusion timestep as on a class label: (c, t) enters its mapping network,
    whose output projects the epilogue's features (c_dim + t_dim conditioning inputs), as released. It takes the
    (x_t, t) pairs of plugins.diffusion.AugmentPipe; a plain image is one at t = 0 (undiffused, as the pipe's
    table gives half the time)."""

    takes_timesteps = True

    def __init__(self, c_dim, img_resolution, img_channels, **kwargs):
        super().__init__(c_dim=c_dim + 1, img_resolution=img_resolution, img_channels=img_channels, **kwargs)

    def forward(self, img, c, **block_kwargs):
        img, t = split_pipe_output(img)
        t = torch.zeros([img.shape[0], 1], device=img.device) if t is None else t
        return super().forward(img, torch.cat([c, t.to(c.dtype)], dim=1), **block_kwargs)  # plain images: t = 0
