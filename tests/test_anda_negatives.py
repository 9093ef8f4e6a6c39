"""Tests for the NDA negatives that feed ANDA's hat{P}_R (plugins/anda/negatives.py)."""

import itertools

import pytest
import torch

from plugins.anda.negatives import (NEGATIVE_TRANSFORMS, cutmix, cutout, jigsaw, make_negatives, mixup, rotation,
                                    stitch)

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
PARTNER_TRANSFORMS = [stitch, mixup, cutmix]


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def noise_batch(batch, channels=3, height=8, width=8, seed=0, dtype=torch.float64):
    """Random images: every pixel, patch and rotation is distinct with probability 1."""
    return torch.rand(batch, channels, height, width, generator=seeded(seed), dtype=dtype) * 2 - 1


def constant_colour_batch(batch, height=8, width=8, seed=0):
    """Images of one random colour each (distinct across images and channels); returns (images, colours)."""
    colours = torch.rand(batch, 3, generator=seeded(seed), dtype=torch.float64) * 2 - 1
    return colours[:, :, None, None].expand(batch, 3, height, width).clone(), colours


def pixel_sources(out, colours):
    """(N, H, W) index of the image whose colour each output pixel has; each pixel must match exactly one."""
    matches = (out[:, None] == colours[None, :, :, None, None]).all(dim=2)
    assert (matches.sum(dim=1) == 1).all(), 'some pixel is not exactly one input colour'
    return matches.long().argmax(dim=1)


def assert_is_rectangle(mask):
    """mask (H, W) bool is a non-empty axis-aligned box; returns its (height, width, top, left)."""
    rows, cols = mask.any(dim=1), mask.any(dim=0)
    assert torch.equal(mask, rows[:, None] & cols[None, :])
    row_ids, col_ids = rows.nonzero().flatten(), cols.nonzero().flatten()
    height, width = len(row_ids), len(col_ids)
    assert height > 0 and row_ids[-1] - row_ids[0] + 1 == height and col_ids[-1] - col_ids[0] + 1 == width
    return height, width, int(row_ids[0]), int(col_ids[0])


def patches_of(image, grid):
    """List of the grid x grid patches of a CHW image, row-major, each as a tuple of its values."""
    channels, height, width = image.shape
    cells = image.reshape(channels, grid, height // grid, grid, width // grid).permute(1, 3, 0, 2, 4)
    return [tuple(cell.flatten().tolist()) for cell in cells.reshape(grid * grid, -1)]


@pytest.mark.parametrize('permutation', ['released', 'non_identity'])
@pytest.mark.parametrize('grid, height, width', [(2, 8, 8), (3, 12, 6), (4, 8, 16)])
def test_jigsaw_permutes_each_images_own_patches(grid, height, width, permutation):
    unchanged = 0
    for seed in range(10):
        x = noise_batch(32, height=height, width=width, seed=seed)
        out = jigsaw(x, grid=grid, permutation=permutation, generator=seeded(100 + seed))
        for image, shuffled in zip(x, out):
            original_patches, shuffled_patches = patches_of(image, grid), patches_of(shuffled, grid)
            assert sorted(shuffled_patches) == sorted(original_patches)
            unchanged += shuffled_patches == original_patches
    if permutation == 'non_identity':
        assert unchanged == 0


def layouts_of(x, out):
    """Per 2x2 one-channel image of four distinct pixels: which input pixel (row-major) each output pixel holds."""
    return [tuple(row) for row in (out.flatten(1)[:, :, None] == x.flatten(1)[:, None, :]).long().argmax(2).tolist()]


def test_non_identity_jigsaw_draws_every_non_identity_permutation_of_a_2x2_grid():
    x = noise_batch(400, channels=1, height=2, width=2)
    layouts = set(layouts_of(x, jigsaw(x, permutation='non_identity', generator=seeded(1))))
    assert len(layouts) == 23 and (0, 1, 2, 3) not in layouts


def test_released_jigsaw_puts_the_cells_back_column_by_column():
    """ANDA's released jigsaw: per image, torch.randperm redrawn while it is the identity; output cell (row r,
    column c) holds input cell perm[c * grid + r]. Checked against that rule, and on the layouts it gives."""
    x = noise_batch(3000, channels=1, height=2, width=2)
    out = jigsaw(x, generator=seeded(4))
    generator, expected = seeded(4), []
    for _ in range(len(x)):
        perm = torch.randperm(4, generator=generator)
        while perm.tolist() == [0, 1, 2, 3]:
            perm = torch.randperm(4, generator=generator)
        expected.append(tuple(int(perm[c * 2 + r]) for r in range(2) for c in range(2)))  # row-major output
    layouts = layouts_of(x, out)
    assert layouts == expected
    # The identity layout comes out 1 time in 23; the transposed one (the excluded identity permutation) never.
    assert set(layouts) == {layout for layout in itertools.permutations(range(4))} - {(0, 2, 1, 3)}
    assert abs(layouts.count((0, 1, 2, 3)) / len(x) - 1 / 23) < 0.015
    # The global generator by default, as released.
    torch.manual_seed(4)
    assert torch.equal(jigsaw(x), out)


@pytest.mark.parametrize('grid, height, width', [(2, 7, 8), (3, 9, 10), (1, 8, 8), (5, 10, 10)])
def test_jigsaw_rejects_bad_grids(grid, height, width):
    with pytest.raises(ValueError, match='grid'):
        jigsaw(noise_batch(2, height=height, width=width), grid=grid)


def test_stitch_takes_one_half_from_a_different_image_in_both_split_directions():
    x, colours = constant_colour_batch(64)
    out = stitch(x, generator=seeded(2))
    sources = pixel_sources(out, colours)
    own = torch.arange(64)[:, None, None]
    offsets = set()
    directions = set()
    for index in range(64):
        from_partner = sources[index] != index
        partner_ids = sources[index][from_partner].unique()
        assert len(partner_ids) == 1
        offsets.add(int((partner_ids[0] - index) % 64))
        bottom = torch.zeros(8, 8, dtype=torch.bool)
        bottom[4:] = True
        if torch.equal(from_partner, bottom):
            directions.add('horizontal')
        else:
            assert torch.equal(from_partner, bottom.T)
            directions.add('vertical')
    assert (sources == own).float().mean() == 0.5
    assert len(offsets) == 1 and 0 not in offsets
    assert directions == {'horizontal', 'vertical'}


def test_cutmix_pastes_a_box_from_a_different_image():
    x, colours = constant_colour_batch(64, height=16, width=16)
    out = cutmix(x, generator=seeded(3))
    sources = pixel_sources(out, colours)
    offsets, areas = set(), []
    for index in range(64):
        from_partner = sources[index] != index
        box_height, box_width, _, _ = assert_is_rectangle(from_partner)
        assert 1 <= box_height <= 15 and 1 <= box_width <= 15
        partner_ids = sources[index][from_partner].unique()
        assert len(partner_ids) == 1
        offsets.add(int((partner_ids[0] - index) % 64))
        areas.append(box_height * box_width / 256)
    assert len(offsets) == 1 and 0 not in offsets
    assert min(areas) < 0.2 and max(areas) > 0.7  # Beta(1, 1) area fractions spread over (0, 1)


def test_mixup_blends_with_a_different_image_with_beta_25_25_weights():
    x, colours = constant_colour_batch(200, height=2, width=2)
    out = mixup(x, generator=seeded(4))
    blended = out[:, :, 0, 0]
    assert torch.equal(out, blended[:, :, None, None].expand_as(out))
    weights, offsets = [], set()
    for index in range(200):
        # Solve blended = lam * own + (1 - lam) * colours[j] for lam on channel 0 and check the other channels.
        lam = (blended[index, 0] - colours[:, 0]) / (colours[index, 0] - colours[:, 0])
        predicted = lam[:, None] * colours[index] + (1 - lam[:, None]) * colours
        fits = ((predicted - blended[index]).abs().amax(dim=1) < 1e-9) & (torch.arange(200) != index)
        assert fits.sum() == 1
        partner = int(fits.nonzero())
        offsets.add((partner - index) % 200)
        weights.append(float(lam[partner]))
    weights = torch.tensor(weights)
    assert len(offsets) == 1 and 0 not in offsets
    assert 0.15 < weights.min() and weights.max() < 0.85  # Beta(25, 25): std 0.07 around 0.5
    assert abs(weights.mean() - 0.5) < 0.03 and 0.04 < weights.std() < 0.1


def test_cutout_fills_a_box_of_NDAs_size_with_the_boxs_channel_means():
    x = noise_batch(256, height=32, width=32)
    out = cutout(x, generator=seeded(5))
    sides, corners = [], []
    for image, cut in zip(x, out):
        changed = (cut != image).any(dim=0)
        box_height, box_width, top, left = assert_is_rectangle(changed)
        assert box_height == box_width and 10 <= box_height <= 19  # floor(10 + 10U) of 32 pixels, as NDA
        assert top + box_height <= 31 and left + box_width <= 31     # corner floor((32 - k) U): never flush right
        means = image[:, changed].mean(dim=1)                       # the patch's own mean, not the image's
        assert torch.allclose(cut[:, changed], means[:, None].expand(3, int(changed.sum())), rtol=0, atol=1e-12)
        sides.append(box_height)
        corners.append(top)
    assert min(sides) == 10 and max(sides) == 19 and min(corners) == 0


def test_cutout_scales_NDAs_32_pixel_sizes():
    out = cutout(noise_batch(64, height=64, width=64), generator=seeded(3))
    sides = [assert_is_rectangle((cut != image).any(dim=0))[0] for image, cut in zip(noise_batch(64, 3, 64, 64), out)]
    assert min(sides) >= 20 and max(sides) <= 39


def test_rotation_turns_every_image_60_degrees_as_PIL_does():
    import numpy as np
    import PIL.Image
    x = torch.randint(0, 256, (4, 3, 32, 32), generator=seeded(6)).double() / 127.5 - 1
    out = rotation(x, generator=seeded(6))
    for image, rotated in zip(x, out):
        pil = PIL.Image.fromarray(((image + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
        reference = torch.from_numpy(np.asarray(pil.rotate(60)).astype(np.float64) / 127.5 - 1).permute(2, 0, 1)
        torch.testing.assert_close(rotated, reference, rtol=0, atol=1e-9)
    assert (out[:, :, 0, 0] == -1).all()                            # a black corner


def test_rotation_rejects_non_square_images():
    with pytest.raises(ValueError, match='square'):
        rotation(noise_batch(2, height=8, width=4))


@pytest.mark.parametrize('transform', PARTNER_TRANSFORMS)
def test_partner_transforms_refuse_a_batch_of_one(transform):
    with pytest.raises(ValueError, match='at least 2 images'):
        transform(noise_batch(1))


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('name', list(NEGATIVE_TRANSFORMS))
def test_transforms_keep_shape_dtype_and_device(name, dtype, device):
    x = noise_batch(4, dtype=dtype).to(device)
    out = make_negatives(x, name, generator=seeded(7))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert not torch.equal(out, x)


@pytest.mark.parametrize('name', list(NEGATIVE_TRANSFORMS))
def test_transforms_are_reproducible_with_a_seeded_generator(name):
    x = noise_batch(16)
    first = make_negatives(x, name, generator=seeded(8))
    assert torch.equal(first, make_negatives(x, name, generator=seeded(8)))
    if name != 'rotation':  # NDA's rotation is one fixed angle
        assert not torch.equal(first, make_negatives(x, name, generator=seeded(9)))


def test_make_negatives_passes_options_and_lists_valid_names_on_error():
    x = noise_batch(2, height=12, width=12)
    assert torch.equal(make_negatives(x, 'jigsaw', generator=seeded(10), grid=3),
                       jigsaw(x, grid=3, generator=seeded(10)))
    with pytest.raises(ValueError, match="'flip'") as error:
        make_negatives(x, 'flip')
    for name in NEGATIVE_TRANSFORMS:
        assert name in str(error.value)


def test_transforms_reject_non_batched_input():
    with pytest.raises(ValueError, match='NCHW'):
        jigsaw(torch.zeros(3, 8, 8))
