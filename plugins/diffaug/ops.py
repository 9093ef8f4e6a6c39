"""DiffAugment ops (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): color,
translation and cutout, applied with probability 1 to every real and fake image D sees, with independent
randomness per sample, and differentiable w.r.t. the images so G's gradient passes through them.

Images are float NCHW batches in upstream's [-1, 1] range. That is also the range the original DiffAugment was
defined on: its StyleGAN2 (TensorFlow) and stylegan2-ada-pytorch ports apply it to D's inputs in [-1, 1], so
the brightness shift U[-0.5, 0.5] covers up to a quarter of the dynamic range and is used unchanged here.

Every op keeps shape, dtype and device, is vectorised over the batch, and accepts an optional `torch.Generator`.
Random numbers are drawn on the generator's device (x's device when no generator is given) and then moved to x's
device, so a CPU generator also reproduces results for CUDA inputs.
"""

import torch

from plugins.common.options import check_range


def _per_sample_uniform(x, generator):
    """U[0, 1) per sample, shaped (N, 1, 1, 1) with x's dtype and device."""
    device = x.device if generator is None else generator.device
    samples = torch.rand((x.shape[0], 1, 1, 1), generator=generator, device=device)
    return samples.to(device=x.device, dtype=x.dtype)


def _per_sample_randint(low, high, x, generator):
    """Uniform integers in [low, high) per sample, shape (N,), on x's device."""
    device = x.device if generator is None else generator.device
    return torch.randint(low, high, (x.shape[0],), generator=generator, device=device).to(x.device)


def brightness(x, generator=None):
    """Add b ~ U[-0.5, 0.5) per sample to every pixel and channel."""
    return x + (_per_sample_uniform(x, generator) - 0.5)


def saturation(x, generator=None):
    """Scale each pixel's deviation from its channel mean by s ~ U[0, 2) per sample."""
    pixel_means = x.mean(dim=1, keepdim=True)
    return (x - pixel_means) * (2 * _per_sample_uniform(x, generator)) + pixel_means


def contrast(x, generator=None):
    """Scale each image's deviation from its mean over channels and pixels by c ~ U[0.5, 1.5) per sample."""
    image_means = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_means) * (_per_sample_uniform(x, generator) + 0.5) + image_means


def color(x, generator=None):
    """DiffAugment's `color` policy: brightness, then saturation, then contrast."""
    return contrast(saturation(brightness(x, generator), generator), generator)


def translation(x, ratio=0.125, generator=None):
    """Shift each sample by integers (dy, dx), each uniform in [-m, m] independently per sample and axis, with
    m = int(size * ratio + 0.5) per axis; content moves down/right for positive shifts and the vacated rows and
    columns are zero-filled. Implemented as clamped index gathers and a validity mask.
    """
    check_range('ratio', ratio, 0, 1)
    batch, channels, height, width = x.shape
    max_dy, max_dx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = _per_sample_randint(-max_dy, max_dy + 1, x, generator)
    dx = _per_sample_randint(-max_dx, max_dx + 1, x, generator)
    source_rows = torch.arange(height, device=x.device)[None, :] - dy[:, None]
    source_cols = torch.arange(width, device=x.device)[None, :] - dx[:, None]
    valid_rows = (source_rows >= 0) & (source_rows < height)
    valid_cols = (source_cols >= 0) & (source_cols < width)
    row_index = source_rows.clamp(0, height - 1)[:, None, :, None].expand(batch, channels, height, width)
    col_index = source_cols.clamp(0, width - 1)[:, None, None, :].expand(batch, channels, height, width)
    shifted = x.gather(2, row_index).gather(3, col_index)
    vacated = ~(valid_rows[:, None, :, None] & valid_cols[:, None, None, :])
    return shifted.masked_fill(vacated, 0)


def cutout(x, ratio=0.5, generator=None):
    """Zero a box of int(size * ratio + 0.5) pixels per axis (a square of half the side for square images) at a
    random position per sample. The box may be clipped at the borders: its start row is uniform over
    [-(s // 2), H - 1 - (s - 1) // 2] (likewise for columns), so at least half of each side stays inside; an
    unclipped box blanks a fraction ratio ** 2 of the pixels (0.25 at the default ratio when s = H / 2 exactly).
    """
    check_range('ratio', ratio, 0, 1)
    height, width = x.shape[2:]
    box_height, box_width = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = _per_sample_randint(-(box_height // 2), height - (box_height - 1) // 2, x, generator)
    left = _per_sample_randint(-(box_width // 2), width - (box_width - 1) // 2, x, generator)
    rows = torch.arange(height, device=x.device)[None, :]
    cols = torch.arange(width, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + box_height)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + box_width)
    return x.masked_fill(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0)


POLICY_OPS = {
    'color': color,
    'translation': translation,
    'cutout': cutout,
}


def diff_augment(x, policy='color,translation,cutout', generator=None):
    """Apply the comma-separated DiffAugment `policy` (entries of POLICY_OPS, in the given order, with their
    default ratios) to the batch x; an empty policy returns x unchanged.
    """
    entries = [entry.strip() for entry in policy.split(',') if entry.strip()]
    unknown = [entry for entry in entries if entry not in POLICY_OPS]
    if unknown:
        raise ValueError(f'unknown DiffAugment policy entries {unknown}; valid entries: {", ".join(POLICY_OPS)}')
    for entry in entries:
        x = POLICY_OPS[entry](x, generator=generator)
    return x
