"""Tests for the DiffAugment ops (Zhao et al. 2020) in plugins/diffaug/ops.py."""

import pytest
import torch

from plugins.diffaug.ops import (POLICY_OPS, brightness, color, contrast, cutout, diff_augment, saturation,
                                 translation)

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
ALL_OPS = [brightness, saturation, contrast, color, translation, cutout, diff_augment]


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def noise_batch(batch, channels=3, height=16, width=16, seed=0, dtype=torch.float64):
    return torch.rand(batch, channels, height, width, generator=seeded(seed), dtype=dtype) * 2 - 1


def numbered_batch(batch, height=16, width=16):
    """Single-channel images whose pixels are 1, 2, ..., H * W: positive, so zeros mark vacated or cut pixels."""
    return torch.arange(1, height * width + 1, dtype=torch.float64).reshape(1, 1, height, width).repeat(batch, 1, 1, 1)


def per_image_factor(out, x, centre):
    """The factor f with out - centre = f * (x - centre), checked to be one constant per image."""
    factors = (out - centre) / (x - centre)
    flat = factors.flatten(1)
    assert torch.allclose(flat, flat[:, :1].expand_as(flat), atol=1e-9)
    return flat[:, 0]


def test_brightness_shifts_each_image_by_one_constant_in_minus_half_to_half():
    x = torch.full((512, 3, 4, 4), 0.1, dtype=torch.float64)
    shifts = (brightness(x, generator=seeded(1)) - x).flatten(1)
    assert torch.allclose(shifts, shifts[:, :1].expand_as(shifts))
    assert shifts.min() >= -0.5 and shifts.max() < 0.5
    assert shifts.min() < -0.45 and shifts.max() > 0.45


def test_saturation_scales_deviation_from_the_pixel_channel_mean_by_zero_to_two():
    x = noise_batch(512, height=4, width=4)
    pixel_means = x.mean(dim=1, keepdim=True)
    out = saturation(x, generator=seeded(2))
    assert torch.allclose(out.mean(dim=1, keepdim=True), pixel_means)
    factors = per_image_factor(out, x, pixel_means)
    assert factors.min() >= 0 and factors.max() < 2
    assert factors.min() < 0.05 and factors.max() > 1.95


def test_contrast_scales_deviation_from_the_image_mean_by_half_to_one_and_a_half():
    x = noise_batch(512, height=4, width=4)
    image_means = x.mean(dim=(1, 2, 3), keepdim=True)
    factors = per_image_factor(contrast(x, generator=seeded(3)), x, image_means)
    assert factors.min() >= 0.5 and factors.max() < 1.5
    assert factors.min() < 0.55 and factors.max() > 1.45


def test_color_on_a_grey_image_is_only_the_brightness_shift():
    x = torch.full((256, 3, 4, 4), -0.3, dtype=torch.float64)
    out = color(x, generator=seeded(4))
    shifts = (out - x).flatten(1)
    assert torch.allclose(shifts, shifts[:, :1].expand_as(shifts))
    assert shifts.min() >= -0.5 and shifts.max() < 0.5
    assert torch.allclose(out, brightness(x, generator=seeded(4)))


def shift_of(out_image, x_image):
    """(dy, dx) that moved the centre pixel of a numbered image to its place in the output."""
    height, width = x_image.shape[1:]
    position = (out_image[0] == x_image[0, height // 2, width // 2]).nonzero()
    assert len(position) == 1
    return int(position[0, 0]) - height // 2, int(position[0, 1]) - width // 2


def shifted_reference(image, dy, dx):
    """Image moved by (dy, dx) with zero fill, built by slicing."""
    height, width = image.shape[1:]
    out = torch.zeros_like(image)
    out[:, max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        image[:, max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)]
    return out


@pytest.mark.parametrize('ratio, max_shift', [(0.125, 2), (0.25, 4)])
def test_translation_shifts_by_at_most_ratio_of_the_size_with_zero_fill(ratio, max_shift):
    x = numbered_batch(1024)
    out = translation(x, ratio=ratio, generator=seeded(5))
    shifts = []
    for image, moved in zip(x, out):
        dy, dx = shift_of(moved, image)
        assert abs(dy) <= max_shift and abs(dx) <= max_shift
        reference = shifted_reference(image, dy, dx)
        assert torch.equal(moved, reference)
        assert (moved == 0).sum() == 16 * 16 - (16 - abs(dy)) * (16 - abs(dx))  # exactly the vacated rows/cols
        shifts.append((dy, dx))
    dys, dxs = {dy for dy, _ in shifts}, {dx for _, dx in shifts}
    assert dys == dxs == set(range(-max_shift, max_shift + 1))  # both directions, per-axis independent
    assert len(set(shifts)) == (2 * max_shift + 1) ** 2  # every (dy, dx) pair occurs


def test_cutout_zeroes_a_half_size_square_possibly_clipped_at_the_border():
    x = numbered_batch(256)
    out = cutout(x, generator=seeded(6))
    unclipped = 0
    touched = set()
    for image, cut in zip(x, out):
        zeroed = cut[0] == 0
        assert torch.equal(cut[0][~zeroed], image[0][~zeroed])
        rows, cols = zeroed.any(dim=1), zeroed.any(dim=0)
        assert torch.equal(zeroed, rows[:, None] & cols[None, :])
        for hits in (rows, cols):
            ids = hits.nonzero().flatten()
            extent = len(ids)
            assert 4 <= extent <= 8 and ids[-1] - ids[0] + 1 == extent  # at least half of the side stays inside
            if extent < 8:
                assert ids[0] == 0 or ids[-1] == 15
                touched.add('start' if ids[0] == 0 else 'end')
        if rows.sum() == 8 and cols.sum() == 8:
            unclipped += 1
            assert zeroed.float().mean() == 0.25
    assert unclipped > 20 and touched == {'start', 'end'}


def test_color_gradient_of_the_sum_is_one_everywhere():
    # Saturation and contrast keep each image's sum and brightness adds a constant, so d(sum(out))/dx = 1.
    x = noise_batch(8).requires_grad_()
    color(x, generator=seeded(7)).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))


def test_translation_gradient_is_one_on_pixels_kept_in_frame_and_zero_elsewhere():
    x = numbered_batch(32).requires_grad_()
    out = translation(x, generator=seeded(8))
    out.sum().backward()
    kept = torch.stack([torch.isin(image, moved) for image, moved in zip(x.detach(), out.detach())])
    assert torch.equal(x.grad, kept.to(x.dtype))


def test_cutout_gradient_is_zero_exactly_inside_the_box():
    x = numbered_batch(32).requires_grad_()
    out = cutout(x, generator=seeded(9))
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).to(x.dtype))


def test_full_policy_is_differentiable():
    x = noise_batch(8).requires_grad_()
    diff_augment(x, generator=seeded(10)).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('op', ALL_OPS)
def test_ops_keep_shape_dtype_and_device(op, dtype, device):
    x = noise_batch(4, height=16, width=12, dtype=dtype).to(device)
    out = op(x, generator=seeded(11))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device


@pytest.mark.parametrize('op', ALL_OPS)
def test_ops_are_reproducible_with_a_seeded_generator(op):
    x = noise_batch(16)
    first = op(x, generator=seeded(12))
    assert torch.equal(first, op(x, generator=seeded(12)))
    assert not torch.equal(first, op(x, generator=seeded(13)))


def test_policy_applies_its_entries_in_order():
    x = noise_batch(4)
    generator = seeded(14)
    manual = color(translation(x, generator=generator), generator=generator)
    assert torch.equal(diff_augment(x, ' translation, color ', generator=seeded(14)), manual)
    assert torch.equal(diff_augment(x, '', generator=seeded(14)), x)


def test_unknown_policy_entries_are_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"\['flip', 'hue'\]") as error:
        diff_augment(noise_batch(2), 'color,flip,hue')
    for entry in POLICY_OPS:
        assert entry in str(error.value)


@pytest.mark.parametrize('op', [translation, cutout])
def test_ratio_outside_zero_one_is_rejected(op):
    with pytest.raises(ValueError, match='ratio'):
        op(noise_batch(2), ratio=1.5)
