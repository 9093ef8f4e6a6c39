"""Tests of plugins.diggan.core: per-sample gradient norms and DigGAN's gradient gap penalty R."""

import numpy as np
import pytest
import torch

from plugins.common.grad_norms import per_sample_grad_norms
from plugins.diggan.core import NormSmoother, gradient_gap_penalty


def _tiny_discriminator():
    """Per-sample D (no layer mixes samples): [N, 2, 3, 3] images -> [N, 1] logits, float64 for finite differences."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(18, 6), torch.nn.Tanh(),
                               torch.nn.Linear(6, 1)).double()


def _images(seed, batch=4):
    return torch.randn([batch, 2, 3, 3], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _norms_one_image_at_a_time(discriminator, images):
    norms = []
    for image in images:
        image = image[None].clone().requires_grad_(True)
        gradient, = torch.autograd.grad(discriminator(image).sum(), image)
        norms.append(gradient.norm().item())
    return np.array(norms)


def _finite_difference_gradient(discriminator, image, step=1e-6):
    flat = image.flatten()
    gradient = np.zeros(flat.numel())
    with torch.no_grad():
        for index in range(flat.numel()):
            offset = torch.zeros_like(flat)
            offset[index] = step
            upper = discriminator((flat + offset).reshape(1, *image.shape)).item()
            lower = discriminator((flat - offset).reshape(1, *image.shape)).item()
            gradient[index] = (upper - lower) / (2 * step)
    return gradient


def test_norms_match_one_image_at_a_time_and_finite_differences():
    discriminator = _tiny_discriminator()
    images = _images(1).requires_grad_(True)
    norms = per_sample_grad_norms(discriminator(images), images)
    assert norms.shape == (4,)
    np.testing.assert_allclose(norms.detach().numpy(), _norms_one_image_at_a_time(discriminator, images.detach()),
                               rtol=1e-12)
    for index in (0, 3):
        finite_difference = np.linalg.norm(_finite_difference_gradient(discriminator, images[index].detach()))
        assert norms[index].item() == pytest.approx(finite_difference, rel=1e-7)


def test_penalty_equals_an_independent_computation():
    discriminator = _tiny_discriminator()
    reals, fakes = _images(2).requires_grad_(True), _images(3).requires_grad_(True)
    penalty = gradient_gap_penalty(per_sample_grad_norms(discriminator(reals), reals),
                                   per_sample_grad_norms(discriminator(fakes), fakes))
    real_norms = _norms_one_image_at_a_time(discriminator, reals.detach())
    fake_norms = _norms_one_image_at_a_time(discriminator, fakes.detach())
    expected = sum((real - fake) ** 2 for real, fake in zip(real_norms, fake_norms)) / len(real_norms)
    assert penalty.item() == pytest.approx(expected, rel=1e-12)


def test_penalty_gradient_reaches_the_discriminator_parameters():
    discriminator = _tiny_discriminator()
    reals, fakes = _images(4), _images(5)

    def penalty():
        real_inputs, fake_inputs = reals.clone().requires_grad_(True), fakes.clone().requires_grad_(True)
        return gradient_gap_penalty(per_sample_grad_norms(discriminator(real_inputs), real_inputs),
                                    per_sample_grad_norms(discriminator(fake_inputs), fake_inputs))

    penalty().backward()
    reached = {name for name, parameter in discriminator.named_parameters() if parameter.grad is not None}
    assert reached == {'1.weight', '1.bias', '3.weight'}  # the output bias does not change dD/dx
    first_weight = discriminator[1].weight
    assert first_weight.grad.abs().sum() > 0

    def penalty_with_weight_nudged(row, column, offset):
        with torch.no_grad():
            first_weight[row, column] += offset
        value = penalty().item()
        with torch.no_grad():
            first_weight[row, column] -= offset
        return value

    step = 1e-6
    for row, column in ((0, 0), (2, 7)):
        finite_difference = (penalty_with_weight_nudged(row, column, step)
                             - penalty_with_weight_nudged(row, column, -step)) / (2 * step)
        assert first_weight.grad[row, column].item() == pytest.approx(finite_difference, rel=1e-5)


def test_without_create_graph_the_norms_are_constants_and_logits_stay_usable():
    discriminator = _tiny_discriminator()
    images = _images(6).requires_grad_(True)
    logits = discriminator(images)
    norms = per_sample_grad_norms(logits, images, create_graph=False)
    assert not norms.requires_grad
    logits.sum().backward()  # the graph of the logits was retained
    assert discriminator[1].weight.grad is not None


def test_samples_mixed_by_a_batch_statistic_get_the_gradient_of_the_summed_logits():
    images = _images(7).requires_grad_(True)

    def mixing_discriminator(x):  # like minibatch-std: every logit sees a batch-wide statistic
        return x.flatten(1).sin().sum(dim=1, keepdim=True) + x.std(dim=0).mean()

    norms = per_sample_grad_norms(mixing_discriminator(images), images)
    summed_gradient, = torch.autograd.grad(mixing_discriminator(images).sum(), images)
    torch.testing.assert_close(norms, summed_gradient.flatten(1).norm(dim=1))


def test_penalty_requires_paired_batches():
    with pytest.raises(ValueError, match='same N'):
        gradient_gap_penalty(torch.ones([4]), torch.ones([3]))
    with pytest.raises(ValueError, match='same N'):
        gradient_gap_penalty(torch.ones([4, 1]), torch.ones([4, 1]))
    with pytest.raises(ValueError, match='same number of samples'):
        images = torch.ones([4, 3], requires_grad=True)
        per_sample_grad_norms(images.sum(dim=1)[:2], images)


def test_smoother_averages_with_the_previous_smoothed_norms():
    smoother = NormSmoother()
    first, second, third = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0]), torch.tensor([0.0, 4.0])
    assert torch.equal(smoother.smooth(first), first)
    assert torch.equal(smoother.smooth(second), torch.tensor([2.0, 4.0]))
    current = third.clone().requires_grad_(True)
    smoothed = smoother.smooth(current)
    torch.testing.assert_close(smoothed, torch.tensor([1.0, 4.0]))
    smoothed.sum().backward()
    torch.testing.assert_close(current.grad, torch.tensor([0.5, 0.5]))
    assert not smoother.previous.requires_grad

    resumed = NormSmoother()
    resumed.load_state_dict(smoother.state_dict())
    torch.testing.assert_close(resumed.smooth(torch.tensor([1.0, 0.0])), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match='shape'):
        resumed.smooth(torch.ones([3]))
    with pytest.raises(ValueError, match='previous_weight'):
        NormSmoother(previous_weight=1.0)
