"""Tests of plugins.atopk.core: Top-k selection (Eq. 12), the adaptive k of Eq. 11, Linear Top-k and chunk splits."""

import math

import numpy as np
import pytest
import torch

from plugins.atopk.core import KController, linear_ramp_k, select_topk_logits, split_k_across_chunks, topk_gan_k


@pytest.mark.parametrize('worst', [False, True])
@pytest.mark.parametrize('shape', [[10], [10, 1]])
def test_selection_returns_the_k_extreme_logits(worst, shape):
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    selected = select_topk_logits(logits, 4, worst=worst)
    ordered = np.sort(logits.numpy().ravel())
    expected = ordered[:4] if worst else ordered[-4:]
    assert list(selected.shape) == [4, *shape[1:]]
    np.testing.assert_array_equal(np.sort(selected.numpy().ravel()), expected)


@pytest.mark.parametrize('worst', [False, True])
def test_only_the_selected_fakes_update_the_generator(worst):
    torch.manual_seed(0)
    generator_net, discriminator = torch.nn.Linear(3, 5), torch.nn.Linear(5, 1)
    latents = torch.randn([8, 3], requires_grad=True)
    logits = discriminator(generator_net(latents))
    loss = torch.nn.functional.softplus(-select_topk_logits(logits, 3, worst=worst)).mean()
    loss.backward()

    order = np.argsort(logits.detach().numpy().ravel())
    chosen = np.sort(order[:3] if worst else order[-3:])
    receives_gradient = np.flatnonzero(latents.grad.abs().sum(dim=1).numpy() > 0)
    np.testing.assert_array_equal(receives_gradient, chosen)

    weight_grad = generator_net.weight.grad.clone()
    generator_net.zero_grad()
    reference = torch.nn.functional.softplus(-discriminator(generator_net(latents[chosen]))).mean()
    reference.backward()
    torch.testing.assert_close(weight_grad, generator_net.weight.grad)


def test_selection_refuses_bad_k_and_shapes():
    for k in (0, 6, 2.0):
        with pytest.raises(ValueError, match='k must'):
            select_topk_logits(torch.zeros([5]), k)
    with pytest.raises(ValueError, match='shape'):
        select_topk_logits(torch.zeros([5, 2]), 1)


def test_k_drifts_to_one_when_p_is_one_and_back_to_batch_when_p_is_zero():
    controller = KController(batch_size=8, seed=3)
    assert controller.k == 8
    assert [controller.step(1.0) for _ in range(9)] == [7, 6, 5, 4, 3, 2, 1, 1, 1]
    assert [controller.step(torch.tensor(0.0, dtype=torch.float64)) for _ in range(9)] == [2, 3, 4, 5, 6, 7, 8, 8, 8]


def test_same_seed_gives_the_same_k_sequence_on_every_rank():
    p_sequence = torch.rand([200], generator=torch.Generator().manual_seed(5)).tolist()
    first, second, other_seed = KController(16, seed=7), KController(16, seed=7), KController(16, seed=8)
    ks = [[controller.step(p) for p in p_sequence] for controller in (first, second, other_seed)]
    assert ks[0] == ks[1]
    assert ks[0] != ks[2]


@pytest.mark.parametrize('p', [0.5, 0.2])
def test_fraction_of_down_moves_matches_p(p):
    steps, start = 4000, 500_000
    controller = KController(batch_size=1_000_000, seed=11)
    controller.load_state_dict({'k': start, 'generator_state': controller.generator.get_state()})
    for _ in range(steps):
        controller.step(p)
    down_moves = (steps - (controller.k - start)) / 2  # no clamping can occur this far from both bounds
    assert abs(down_moves / steps - p) < 0.03  # about 4 standard deviations


def test_state_dict_resumes_the_exact_k_sequence():
    controller = KController(6, seed=2)
    for _ in range(10):
        controller.step(0.7)
    resumed = KController(6, seed=99)
    resumed.load_state_dict(controller.state_dict())
    assert [resumed.step(0.6) for _ in range(30)] == [controller.step(0.6) for _ in range(30)]


def test_controller_refuses_bad_arguments():
    with pytest.raises(ValueError, match='batch_size'):
        KController(0)
    with pytest.raises(ValueError, match='p must lie in'):
        KController(4).step(-0.5)
    with pytest.raises(ValueError, match='k must lie in'):
        KController(4).load_state_dict({'k': 5, 'generator_state': torch.Generator().get_state()})


def test_topk_gan_schedule_at_the_papers_settings_over_the_whole_run():
    # Batch 4, nu 0.75, gamma 0.99, 100 images: 4 * 0.99^e drops to 3 or below first at e = 29 (0.99^29 = 0.747).
    ks = np.array([topk_gan_k(nimg, 4, 0.75, 0.99, 100) for nimg in range(0, 2_000_000, 4)])
    assert np.all(ks[:2900 // 4] == 4) and np.all(ks[2900 // 4:] == 3)


def test_topk_gan_schedule_shrinks_once_per_epoch_to_its_floor():
    ks = [topk_gan_k(epoch * 1000 + offset, 64, 0.5, 0.99, 1000) for epoch in range(100) for offset in (0, 999)]
    assert ks[0::2] == ks[1::2]                                     # constant within an epoch
    assert all(a >= b for a, b in zip(ks, ks[1:])) and ks[0] == 64
    assert ks[2 * 68] == 33 and ks[2 * 69] == 32 and ks[-1] == 32   # 64 * 0.99^68 = 32.3, 64 * 0.99^69 = 31.99
    with pytest.raises(ValueError, match='training_set_size must lie in'):
        topk_gan_k(0, 4, 0.75, 0.99, 0)


@pytest.mark.parametrize('batch, nu', [(4, 0.75), (10, 0.5), (5, 0.75), (30, 0.1), (64, 0.5)])
def test_linear_ramp_runs_from_batch_to_ceil_nu_batch_then_stays(batch, nu):
    k_min = math.ceil(round(nu * batch, 6))
    ks = [linear_ramp_k(kimg, batch, nu, over_kimg=100) for kimg in np.linspace(0, 100, 101)]
    assert ks[0] == batch and ks[-1] == k_min
    assert all(a >= b for a, b in zip(ks, ks[1:]))
    assert linear_ramp_k(250, batch, nu, over_kimg=100) == k_min
    for kimg, k in zip(np.linspace(0, 100, 101), ks):
        straight_line = batch - (batch - k_min) * kimg / 100
        assert abs(k - straight_line) <= 0.5 + 1e-9


def test_linear_ramp_reaches_its_floor_within_the_ramp():
    ks = [linear_ramp_k(kimg, 4, 0.75, over_kimg=2000) for kimg in range(0, 2001, 10)]
    assert set(ks[:101]) == {4} and set(ks[101:]) == {3}            # k = 3 after 1000 of the 2000 kimg


def test_chunk_split_is_proportional_and_sums_to_k():
    assert split_k_across_chunks(8, [4, 4, 4, 4]) == [2, 2, 2, 2]
    assert split_k_across_chunks(10, [4, 4, 4, 4]) == [3, 3, 2, 2]
    assert split_k_across_chunks(16, [4, 4, 4, 4]) == [4, 4, 4, 4]
    assert split_k_across_chunks(3, [4, 4, 4, 4]) == [1, 1, 1, 1]  # k below the chunk count: 1 each
    assert split_k_across_chunks(1, [1]) == [1]
    generator = np.random.default_rng(0)
    for _ in range(200):
        sizes = generator.integers(1, 9, size=generator.integers(1, 6)).tolist()
        k = int(generator.integers(len(sizes), sum(sizes) + 1))
        split = split_k_across_chunks(k, sizes)
        assert split == split_k_across_chunks(k, sizes)
        assert sum(split) == k
        assert all(1 <= part <= size for part, size in zip(split, sizes))
        spare, room_total = k - len(sizes), sum(sizes) - len(sizes)
        for part, size in zip(split, sizes):
            assert abs(part - (1 + spare * (size - 1) / max(room_total, 1))) < 1


def test_chunk_split_refuses_bad_arguments():
    with pytest.raises(ValueError, match='k must lie in'):
        split_k_across_chunks(9, [4, 4])
    with pytest.raises(ValueError, match=r'chunk_sizes\[1\]'):
        split_k_across_chunks(2, [4, 0])
    with pytest.raises(ValueError, match='at least one chunk'):
        split_k_across_chunks(1, [])
