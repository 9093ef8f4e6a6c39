"""Negative data augmentations (NDA, Sinha et al. 2021) that build ANDA's negative samples NDA(x_real), the
distribution hat{P}_R whose augmented version D is trained to call fake with weight lambda * (1 - alpha) in the
ANDA supplementary's Eq. S4.

Every transform takes a float NCHW batch (upstream's [-1, 1] range; any device and dtype), returns a tensor of
the same shape, dtype and device, draws its randomness independently per image without a Python loop over
images (except the released jigsaw, which draws as released), and accepts an optional `torch.Generator`. Random numbers are drawn on the generator's device (x's device
when no generator is given) and then moved to x's device, so a CPU generator also reproduces results for CUDA
inputs.

Partner-based transforms (stitch, mixup, cutmix) take each image's partner from a different image of the batch:
the batch is rolled by one random offset in [1, N - 1], a derangement. A batch of one image has no different
image, so they raise ValueError rather than fall back to pairing the image with itself (which would return a
real image as a "negative").
"""

import math

import torch

from plugins.common.options import check_int_range

_MAX_JIGSAW_GRID = 4  # (grid ** 2)! must fit in int64 for the permutation code: 16! < 2 ** 63 <= 25!
PERMUTATIONS = ('released', 'non_identity')  # jigsaw's: ANDA's released layout, or never the unchanged image


def _check_images(x):
    if x.ndim != 4:
        raise ValueError(f'expected an NCHW image batch with 4 dimensions, got shape {tuple(x.shape)}')


def _uniform(size, x, generator):
    """U[0, 1) float32 samples on x's device, drawn on the generator's device."""
    device = x.device if generator is None else generator.device
    return torch.rand(size, generator=generator, device=device).to(x.device)


def _randint(low, high, size, x, generator):
    """Uniform integers in [low, high) on x's device, drawn on the generator's device."""
    device = x.device if generator is None else generator.device
    return torch.randint(low, high, size, generator=generator, device=device).to(x.device)


def _uniform_integers_below(high, x, generator):
    """One uniform integer in [0, high[i]) per entry of the int64 tensor `high` (all entries >= 1)."""
    scaled = (_uniform(high.shape, x, generator) * high).long()
    return torch.minimum(scaled, high - 1)


def _partner_images(x, generator):
    """x's images reordered so that image i is paired with a different image: a roll by an offset in [1, N - 1]."""
    batch = x.shape[0]
    if batch < 2:
        raise ValueError(f'partner-based negatives need at least 2 images in the batch (each image is paired with '
                         f'a different one), got {batch}')
    offset = _randint(1, batch, (1,), x, generator)
    return x[(torch.arange(batch, device=x.device) + offset) % batch]


def _box_mask(top, left, box_height, box_width, height, width):
    """(N, 1, H, W) bool mask of the per-image boxes rows [top, top + box_height) x cols [left, left + box_width)."""
    rows = torch.arange(height, device=top.device)
    cols = torch.arange(width, device=top.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + box_height)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + box_width)[:, None])
    return in_rows[:, None, :, None] & in_cols[:, None, None, :]


def _random_box_mask(x, box_height, box_width, generator):
    """Mask of per-image boxes of the given int64 sizes placed uniformly at random fully inside the image."""
    height, width = x.shape[2:]
    top = _uniform_integers_below(height - box_height + 1, x, generator)
    left = _uniform_integers_below(width - box_width + 1, x, generator)
    return _box_mask(top, left, box_height, box_width, height, width)


def _random_non_identity_permutations(batch, cells, x, generator):
    """(batch, cells) int64 permutations drawn uniformly from the cells! - 1 non-identity ones.

    Each row decodes a code drawn uniformly from [1, cells!) in the factorial number system (Lehmer code): digit i
    picks which of the still unused cells goes to position i, and code 0, the only all-zero code, is the identity.
    """
    codes = _randint(1, math.factorial(cells), (batch,), x, generator)
    unused = torch.ones(batch, cells, dtype=torch.bool, device=x.device)
    columns = []
    for position in range(cells):
        digit = codes // math.factorial(cells - 1 - position) % (cells - position)
        rank_among_unused = unused.long().cumsum(dim=1) - 1
        chosen = unused & (rank_among_unused == digit[:, None])
        columns.append(chosen.long().argmax(dim=1))
        unused &= ~chosen
    return torch.stack(columns, dim=1)


def _released_permutations(batch, cells, generator):
    """(batch, cells) int64 permutations drawn as ANDA's released `get_perm`: per image in turn, torch.randperm on
    the CPU until the draw is not the identity."""
    permutations = []
    for _ in range(batch):
        permutation = torch.randperm(cells, generator=generator)
        while torch.equal(permutation, torch.arange(cells)):
            permutation = torch.randperm(cells, generator=generator)
        permutations.append(permutation)
    return torch.stack(permutations)


def jigsaw(x, grid=2, permutation='released', generator=None):
    """Jigsaw negative (NDA; ANDA's released code uses grid=2): cut each image into grid x grid equal patches and
    rearrange them by a permutation drawn per image. H and W must be divisible by grid; grid is limited to [2, 4].

    permutation='released' (ANDA's `Training_ANDA/training/loss.py`, `jigsaw_k`): the cells are cut row by row,
    permuted by a draw of `torch.randperm` repeated until it is not the identity, one image after another (a Python
    loop, as released), and put back column by column: output cell (row r, column c) holds input cell
    perm[c * grid + r] (row-major numbering). The layout it excludes is thus the transposed one, and the image comes
    out unchanged when perm is the transposition (1 time in 23 at grid 2).
    permutation='non_identity': output cell i (row-major) holds input cell perm[i], perm uniform among the
    (grid ** 2)! - 1 non-identity permutations, drawn for the whole batch at once: no output equals its input.
    """
    _check_images(x)
    grid = check_int_range('grid', grid, 2, _MAX_JIGSAW_GRID)
    batch, channels, height, width = x.shape
    if height % grid or width % grid:
        raise ValueError(f'jigsaw needs H and W divisible by grid={grid}, got H={height}, W={width}')
    patch_height, patch_width = height // grid, width // grid
    cells = grid * grid
    patches = x.reshape(batch, channels, grid, patch_height, grid, patch_width)
    patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, cells, channels, patch_height, patch_width)
    if permutation == 'released':
        permutations = _released_permutations(batch, cells, generator).to(x.device)
    elif permutation == 'non_identity':
        permutations = _random_non_identity_permutations(batch, cells, x, generator)
    else:
        raise ValueError(f'permutation must be one of {", ".join(PERMUTATIONS)}; got {permutation!r}')
    shuffled = patches[torch.arange(batch, device=x.device)[:, None], permutations]
    shuffled = shuffled.reshape(batch, grid, grid, channels, patch_height, patch_width)
    # (image, i, j, ...): put back column by column (released: cell i * grid + j goes to column i, row j) or row by row.
    layout = (0, 3, 2, 4, 1, 5) if permutation == 'released' else (0, 3, 1, 4, 2, 5)
    return shuffled.permute(*layout).reshape(batch, channels, height, width)


def stitch(x, generator=None):
    """Stitching negative (NDA): each image keeps its first half (top, or left) and takes the second half (bottom,
    or right) from a partner image; the split line is horizontal or vertical with probability 1/2 per image. For
    odd sizes the partner supplies the larger half (from row/col floor(size / 2) on).
    """
    _check_images(x)
    partners = _partner_images(x, generator)
    height, width = x.shape[2:]
    bottom_half = (torch.arange(height, device=x.device) >= height // 2)[None, None, :, None]
    right_half = (torch.arange(width, device=x.device) >= width // 2)[None, None, None, :]
    split_horizontally = _uniform((x.shape[0], 1, 1, 1), x, generator) < 0.5
    from_partner = torch.where(split_horizontally, bottom_half, right_half)
    return torch.where(from_partner, partners, x)


def cutout(x, generator=None):
    """Cutout negative (NDA's `train_fns_aug.py`): a square of side floor((10 + 10U) H / 32) pixels (10-19 at 32x32,
    U ~ U[0, 1) per image), its corner at floor((H - side) U') on each axis, filled with the mean of each channel
    over that square. Needs square images.
    """
    _check_images(x)
    height, width = x.shape[2:]
    if height != width:
        raise ValueError(f'cutout needs square images, got H={height}, W={width}')
    side = ((10 + 10 * _uniform((x.shape[0],), x, generator)) * height / 32).floor().long().clamp(1, height)
    top = ((height - side) * _uniform((x.shape[0],), x, generator)).floor().long()
    left = ((width - side) * _uniform((x.shape[0],), x, generator)).floor().long()
    inside_box = _box_mask(top, left, side, side, height, width)
    box_means = (x * inside_box).sum(dim=(2, 3), keepdim=True) / (side * side)[:, None, None, None]
    return torch.where(inside_box, box_means.to(x.dtype), x)


def mixup(x, concentration=25, generator=None):
    """Mixup negative (NDA): lam * x + (1 - lam) * partner with lam ~ Beta(concentration, concentration) per image.

    Beta(a, a) for integer a is sampled exactly as the a-th smallest of 2a - 1 uniforms (order statistics), which
    keeps the draw on the given generator; hence `concentration` must be a positive integer.
    """
    _check_images(x)
    concentration = check_int_range('concentration', concentration, 1)
    partners = _partner_images(x, generator)
    uniforms = _uniform((x.shape[0], 2 * concentration - 1), x, generator)
    lam = uniforms.kthvalue(concentration, dim=1).values.to(x.dtype)[:, None, None, None]
    return lam * x + (1 - lam) * partners


def cutmix(x, generator=None):
    """CutMix negative (NDA): paste a partner's box into each image at the same location. The box area fraction is
    drawn from Beta(1, 1) = U[0, 1) per image and both sides are scaled by its square root; each side is rounded
    and clamped to [1, size - 1] so every output mixes both images, and the box lies uniformly inside the image
    (no border clipping, so the pasted area matches the drawn fraction up to rounding).
    """
    _check_images(x)
    partners = _partner_images(x, generator)
    height, width = x.shape[2:]
    side_fraction = _uniform((x.shape[0],), x, generator).sqrt()
    box_height = (side_fraction * height).round().long().clamp(1, height - 1)
    box_width = (side_fraction * width).round().long().clamp(1, width - 1)
    inside_box = _random_box_mask(x, box_height, box_width, generator)
    return torch.where(inside_box, partners, x)


def rotation(x, generator=None, angle=60):
    """Rotation negative (NDA's `train_fns_aug.py` `rotate`): every image turned by the same `angle` degrees
    (default 60, NDA's) counter-clockwise about its centre, nearest-neighbour, the uncovered corners black (-1), as
    PIL's `rotate` does there. Deterministic: `generator` is accepted for a uniform signature. Needs square images.
    """
    _check_images(x)
    height, width = x.shape[2:]
    if height != width:
        raise ValueError(f'rotation needs square images, got H={height}, W={width}')
    radians = math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    centre = (height - 1) / 2
    offsets = torch.arange(height, device=x.device, dtype=torch.float64) - centre
    dy, dx = offsets[:, None], offsets[None, :]
    source_x = (cos * dx - sin * dy + centre).round().long()     # inverse of a counter-clockwise turn, y down
    source_y = (sin * dx + cos * dy + centre).round().long()
    inside = (source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)
    rotated = x[:, :, source_y.clamp(0, height - 1), source_x.clamp(0, width - 1)]
    return torch.where(inside, rotated, torch.full_like(rotated, -1))


NEGATIVE_TRANSFORMS = {
    'jigsaw': jigsaw,
    'stitch': stitch,
    'cutout': cutout,
    'mixup': mixup,
    'cutmix': cutmix,
    'rotation': rotation,
}


def make_negatives(x, name, generator=None, **opts):
    """Apply the negative transform `name` (a key of NEGATIVE_TRANSFORMS) to the batch x, passing `opts` on."""
    if name not in NEGATIVE_TRANSFORMS:
        raise ValueError(f'unknown negative transform {name!r}; valid names: {", ".join(NEGATIVE_TRANSFORMS)}')
    return NEGATIVE_TRANSFORMS[name](x, generator=generator, **opts)
