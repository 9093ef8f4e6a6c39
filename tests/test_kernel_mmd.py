"""Tests of the KMMD metric (patch 0033, metrics/kernel_mmd.py): against a direct O(n^2) computation, zero for a
set against itself, and the closed-form value for two shifted Gaussians."""

import math

import numpy as np
import pytest
import torch

from metrics import kernel_mmd, metric_main


def direct_kmmd(real, gen, sigma=1.0):
    """Xu et al.'s definition pair by pair: the bandwidth from the mean squared distance over all pairs of real
    features, then the three kernel means over all pairs, i = j included."""
    def squared_distances(a, b):
        return np.array([[np.square(x - y).sum() for y in b] for x in a])
    real_real, gen_gen, real_gen = (squared_distances(real, real), squared_distances(gen, gen),
                                    squared_distances(real, gen))
    width = 2 * sigma**2 * real_real.mean()
    mmd2 = (np.exp(-real_real / width).mean() + np.exp(-gen_gen / width).mean()
            - 2 * np.exp(-real_gen / width).mean())
    return math.sqrt(mmd2)


@pytest.mark.parametrize('sigma, block_size', [(1.0, 2048), (0.5, 7)])
def test_equals_the_direct_pairwise_computation(sigma, block_size):
    rng = np.random.default_rng(0)
    real, gen = rng.normal(size=(40, 6)), rng.normal(0.3, 1.2, size=(23, 6))
    value = kernel_mmd.kernel_mmd(torch.from_numpy(real), gen, sigma=sigma, block_size=block_size)
    assert value == pytest.approx(direct_kmmd(real, gen, sigma), rel=1e-10)
    assert value > 0.05


def test_a_set_against_itself_is_zero_and_the_bandwidth_scales_with_the_features():
    features = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    assert kernel_mmd.kernel_mmd(features, features.numpy()) == 0
    other = torch.randn(30, 8, generator=torch.Generator().manual_seed(2)) + 0.5
    assert kernel_mmd.kernel_mmd(features * 10, other * 10) == pytest.approx(kernel_mmd.kernel_mmd(features, other),
                                                                              rel=1e-7)  # float32 inputs


def test_shifted_gaussians_give_the_closed_form_value():
    """X ~ N(0, I_d), Y ~ N(mu, I_d), k = exp(-|a - b|^2 / (2 g)): E k(X, X') = E k(Y, Y') = c and
    E k(X, Y) = c exp(-|mu|^2 / (2 (g + 2))) with c = (g / (g + 2))^(d/2); the bandwidth g is the mean squared
    distance, 2 d (n - 1) / n; the biased estimate adds (1 - c) / n for each of the two within-set means."""
    n, d, shift = 4000, 2, 2.0
    generator = torch.Generator().manual_seed(3)
    real = torch.randn(n, d, generator=generator, dtype=torch.float64)
    gen = torch.randn(n, d, generator=generator, dtype=torch.float64) + torch.tensor([shift, 0], dtype=torch.float64)
    g = 2 * d * (n - 1) / n
    c = (g / (g + 2)) ** (d / 2)
    expected = math.sqrt(2 * c * (1 - math.exp(-shift**2 / (2 * (g + 2)))) + 2 * (1 - c) / n)
    assert expected == pytest.approx(0.615, abs=1e-3)
    assert kernel_mmd.kernel_mmd(real, gen) == pytest.approx(expected, abs=0.01)


def test_registered_with_the_fid_counts():
    assert metric_main.is_valid_metric('kmmd50k_full') and metric_main.is_valid_metric('kmmd5k_full')
