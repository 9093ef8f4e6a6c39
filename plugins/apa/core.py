"""Pure-PyTorch math of APA (Jiang et al. 2021, Eq. 3; released `training/loss.py`,
`adaptive_pseudo_augmentation`). Nothing here imports upstream code."""

import torch


def pseudo_augment(real_img, fake_img, p):
    """Each real image replaced by the fake at its position with probability p (one Bernoulli(p) draw per image,
    `torch.rand([N, 1, 1, 1])` as released); returns (images, flags [N, 1, 1, 1] bool). `fake_img` must be
    detached: D's real term must not reach G."""
    if real_img.shape != fake_img.shape:
        raise ValueError(f'APA replaces each real image by the fake at its position; got reals of shape '
                         f'{list(real_img.shape)} and fakes of shape {list(fake_img.shape)}')
    flags = torch.rand([real_img.shape[0], 1, 1, 1], device=real_img.device) < p
    return torch.where(flags, fake_img.to(real_img.dtype), real_img), flags
