"""Tests of plugins.common: option validation and the overfitting heuristic (ADA's r_t, ATop-k Eq. 10), against
ADA's update as upstream's training loop writes it."""

import math
import pickle

import numpy as np
import pytest
import torch
import torch.distributed
import torch.multiprocessing

from plugins.common.options import check_choice, check_int_range, check_range, check_type
from plugins.common.overfit import OverfitHeuristic


def test_option_checks_name_the_value_and_the_accepted_values():
    assert check_range('target', 0.6, 0, 1) == 0.6
    with pytest.raises(ValueError, match=r'target must lie in \[0, 1\], got 1.5'):
        check_range('target', 1.5, 0, 1)
    with pytest.raises(ValueError, match=r'speed must lie in \(0, inf\), got 0'):
        check_range('speed', 0, 0, low_inclusive=False)
    with pytest.raises(ValueError, match='x must be a finite real number'):
        check_range('x', float('nan'), 0, 1)
    for infinite in (float('inf'), 1e400, -float('inf')):   # JSON's Infinity and 1e400 parse to inf
        with pytest.raises(ValueError, match='speed_kimg must be a finite real number, got -?inf'):
            check_range('speed_kimg', infinite, 0, low_inclusive=False)
    with pytest.raises(ValueError, match="mode must be one of 'a', 'b'; got 'c'"):
        check_choice('mode', 'c', ('a', 'b'))
    with pytest.raises(ValueError, match='flag must be of type int, got True'):
        check_type('flag', True, int)
    assert check_type('flag', True, (bool, int)) is True
    assert check_int_range('n', np.int64(3), 1) == 3
    with pytest.raises(ValueError, match='n must be an integer, got 2.0'):
        check_int_range('n', 2.0, 1)


@pytest.mark.parametrize('options', [dict(target=1.5), dict(target=-0.1), dict(interval=0), dict(interval=2.0),
                                     dict(speed_kimg=0), dict(speed_kimg=-5)])
def test_invalid_options_are_refused(options):
    with pytest.raises(ValueError):
        OverfitHeuristic(**options)


def _positive_logits(batch):
    return torch.rand([batch, 1]) + 0.1


def ada_p(p, eta, batch, target=0.6, interval=4, speed_kimg=500):
    """Upstream's training loop's ADA step, as it writes it: a float64 step added to the float32 p, clamped at 0."""
    adjust = np.sign(eta - target) * (batch * interval) / (speed_kimg * 1000)
    return (p + adjust).max(torch.zeros([]))


def test_p_rises_by_one_step_per_adjustment_with_no_cap():
    batch, interval, speed_kimg = 8, 4, 0.128
    heuristic = OverfitHeuristic(interval=interval, speed_kimg=speed_kimg)
    history, expected = [], [torch.zeros([])]
    for _ in range(6):
        for _ in range(interval):
            heuristic.accumulate(_positive_logits(batch))
        history.append(heuristic.adjust(batch).clone())
        expected.append(ada_p(expected[-1], 1.0, batch, interval=interval, speed_kimg=speed_kimg))
    assert [p.item() for p in history] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]  # as ADA's p, not capped at 1
    assert all(p.dtype == torch.float32 and torch.equal(p, ada) for p, ada in zip(history, expected[1:]))


def test_default_step_is_adas_bit_for_bit():
    batch = 4
    heuristic = OverfitHeuristic()
    heuristic.accumulate(_positive_logits(batch))
    assert torch.equal(heuristic.adjust(batch), ada_p(torch.zeros([]), 1.0, batch))
    assert heuristic.last_eta.item() == 1.0


def test_p_falls_to_zero_and_clamps_when_signs_are_below_target():
    batch = 8
    heuristic = OverfitHeuristic(interval=4, speed_kimg=0.128)
    heuristic.load_state_dict({'p': torch.tensor(0.6),
                               'pending_sign_sum': torch.tensor(0.0, dtype=torch.float64),
                               'pending_count': torch.tensor(0.0, dtype=torch.float64)})
    mostly_negative = torch.tensor([1.0, -1.0, -2.0, -0.5, 0.3, -0.2, -4.0, 2.0])  # eta = -0.25
    history, expected = [], [torch.tensor(0.6)]
    for _ in range(4):
        heuristic.accumulate(mostly_negative)
        history.append(heuristic.adjust(batch).clone())
        expected.append(ada_p(expected[-1], -0.25, batch, speed_kimg=0.128))
    assert [p.item() for p in history] == pytest.approx([0.35, 0.1, 0.0, 0.0], abs=1e-7)
    assert all(torch.equal(p, ada) for p, ada in zip(history, expected[1:]))
    assert heuristic.last_eta.item() == pytest.approx(-0.25)


def test_eta_is_the_mean_sign_of_every_logit_since_the_last_adjustment():
    generator = torch.Generator().manual_seed(0)
    chunks = [torch.randn([5, 1], generator=generator), torch.randn([3], generator=generator),
              torch.tensor([0.0, -0.0, 1e-8, -1e-8])]
    heuristic = OverfitHeuristic()
    heuristic.accumulate(torch.randn([7]))  # consumed by the first adjustment, must not leak into the second
    heuristic.adjust(4)
    for chunk in chunks:
        heuristic.accumulate(chunk)
    pooled = np.concatenate([chunk.numpy().ravel() for chunk in chunks])
    expected_eta = np.mean(np.sign(pooled))  # upstream's 'Loss/signs/real': sign(0) = 0, counted
    assert heuristic.pending_count.item() == pooled.size
    heuristic.adjust(4)
    assert heuristic.last_eta.item() == pytest.approx(expected_eta, abs=1e-12)
    assert heuristic.pending_count.item() == 0 and heuristic.pending_sign_sum.item() == 0


def test_eta_equal_to_target_and_empty_adjustments_leave_p_unchanged():
    heuristic = OverfitHeuristic(target=0.5, interval=1, speed_kimg=0.01)
    heuristic.p.fill_(0.3)
    heuristic.accumulate(torch.tensor([1.0, 2.0, 3.0, -1.0]))  # eta = 0.5
    assert heuristic.adjust(4).item() == pytest.approx(0.3)
    assert heuristic.adjust(4).item() == pytest.approx(0.3)
    assert math.isnan(heuristic.last_eta.item())


def test_gradients_are_ignored_and_state_survives_state_dict_and_pickle():
    heuristic = OverfitHeuristic(interval=2, speed_kimg=0.1)
    logits = torch.randn([6, 1], requires_grad=True)
    heuristic.accumulate(logits * 2)
    heuristic.adjust(6)
    heuristic.accumulate(logits)
    state = heuristic.state_dict()
    assert set(state) == {'p', 'pending_sign_sum', 'pending_count'}
    restored = OverfitHeuristic(interval=2, speed_kimg=0.1)
    restored.load_state_dict(state)
    unpickled = pickle.loads(pickle.dumps(heuristic))
    for other in (restored, unpickled):
        for name in state:
            assert torch.equal(getattr(other, name), getattr(heuristic, name))
    assert heuristic.pending_count.item() == 6 and not heuristic.pending_sign_sum.requires_grad
    assert torch.equal(restored.adjust(6), heuristic.adjust(6))
    assert torch.equal(unpickled.adjust(6), heuristic.p)


def _gloo_worker(rank, world_size, init_file, result_dir, logits_per_rank, initial_p, batch):
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    heuristic = OverfitHeuristic()
    heuristic.p.fill_(initial_p)
    heuristic.accumulate(torch.tensor(logits_per_rank[rank]))
    heuristic.adjust(batch)
    torch.save({'p': heuristic.p.item(), 'eta': heuristic.last_eta.item()}, f'{result_dir}/rank{rank}.pt')
    torch.distributed.destroy_process_group()


def test_adjust_pools_signs_over_ranks_with_gloo(tmp_path):
    # Rank 0 alone (eta 1) would raise p, rank 1 alone (eta 1/3) would lower it; the mean of the per-rank means
    # (2/3) would raise it; the pooled mean over all 8 logits is (2 + 2) / 8 = 0.5 < 0.6, so p must fall.
    logits_per_rank = [[0.5, 2.0], [1.0, 0.1, 3.0, 0.2, -1.0, -0.3]]
    initial_p, batch = 0.5, 8
    torch.multiprocessing.spawn(_gloo_worker, nprocs=2, join=True,
                                args=(2, str(tmp_path / 'init'), str(tmp_path), logits_per_rank, initial_p, batch))
    pooled = np.concatenate(logits_per_rank)
    expected_eta = np.mean(np.sign(pooled))
    results = [torch.load(tmp_path / f'rank{rank}.pt') for rank in range(2)]
    assert results[0] == results[1]
    assert results[0]['eta'] == pytest.approx(expected_eta)
    assert results[0]['p'] == ada_p(torch.tensor(initial_p), expected_eta, batch).item()
