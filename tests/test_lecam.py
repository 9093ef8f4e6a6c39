"""LeCam (plugins.lecam): the penalty and its moving averages against independent computations over a whole run of
chunks, D's gradient against autograd of the term on its own, exact state restore, and option errors. The penalty
equals the released BigGAN code's `lecam_reg` (checked in a scratch comparison); train.py runs are in
test_plugin_loss.py and test_reliability.py."""

import copy

import pytest
import torch

from tests.tiny import (Batches, assert_d_main_adds_logit_term, make_loss, one_thread,  # noqa: F401 (autouse fixture)
                        phase_gradients, tiny_networks)


def test_penalty_in_both_forms():
    from plugins.lecam.core import lecam_penalty
    real = torch.tensor([2.0, -1.0, 0.5])
    fake = torch.tensor([-3.0, 1.0])
    ema_real, ema_fake = torch.tensor(0.25), torch.tensor(-0.5)
    # released: relu(D(x) - a_F) = [2.5, 0, 1.0]; relu(a_R - D(G(z))) = [3.25, 0]
    assert lecam_penalty(real, fake, ema_real, ema_fake).item() == pytest.approx((2.5**2 + 1.0**2) / 3 + 3.25**2 / 2)
    assert lecam_penalty(real, fake, ema_real, ema_fake, 'paper').item() == pytest.approx(
        (2.5**2 + 0.5**2 + 1.0**2) / 3 + (3.25**2 + 0.75**2) / 2)


def test_moving_average_is_tensorflows_zero_debiased_one_over_a_whole_run():
    from plugins.lecam.core import ZeroDebiasedAverage
    values = torch.randn([300], generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 1
    average = ZeroDebiasedAverage(0.99)
    for step, value in enumerate(values, 1):
        weights = 0.01 * 0.99 ** torch.arange(step - 1, -1, -1, dtype=torch.float64)  # (1 - d) d^(t - i)
        expected = (weights * values[:step]).sum() / (1 - 0.99 ** step)
        assert average.update(value * 3, torch.tensor(3.0)).item() == pytest.approx(expected.item(), rel=1e-6)
        if step == 150:  # an empty batch (a count of 0) leaves the average where it was
            assert average.update(torch.tensor(0.0), torch.tensor(0.0)).item() == pytest.approx(expected.item(), rel=1e-6)
    assert int(average.steps) == 300
    first = ZeroDebiasedAverage(0.99)
    assert first.update(torch.tensor(0.0), torch.tensor(0.0)).item() == 0.0  # nothing averaged yet
    assert first.update(torch.tensor(10.0), torch.tensor(2.0)).item() == 5.0  # the first update is the mean itself


def test_d_gets_upstreams_gradient_plus_the_weighted_penalty():
    def penalty(real_logits, gen_logits):  # after one update the averages are the chunk's means
        ema_real, ema_fake = real_logits.detach().mean(), gen_logits.detach().mean()
        return 0.5 * ((real_logits - ema_fake).relu().square().mean() + (ema_real - gen_logits).relu().square().mean())
    loss = assert_d_main_adds_logit_term('plugins.Loss', {'lecam': {'weight': 0.5}}, penalty)
    state = loss.state_dict()['methods']['lecam']
    assert state['real']['steps'] == 1 and state['fake']['steps'] == 1


def test_state_restores_the_averages_exactly():
    G, D = tiny_networks()
    batches = Batches(batch=4, batch_gpu=2)
    loss = make_loss(G, D, 'plugins.Loss', lecam={'weight': 0.5})
    for _ in range(3):
        batch = batches.next()
        for phase in ('Gmain', 'Dmain'):
            phase_gradients(loss, G, D, batch, phase)
    restored = make_loss(G, D, 'plugins.Loss', lecam={'weight': 0.5})
    restored.load_state_dict(copy.deepcopy(loss.state_dict()))
    batch = batches.next()
    for each in (loss, restored):
        phase_gradients(each, G, D, batch, 'Gmain')
    first, second = (phase_gradients(each, G, D, batch, 'Dmain') for each in (loss, restored))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert loss.state_dict()['methods']['lecam']['fake']['steps'] == 4


def test_chunks_without_generated_images_leave_the_fake_average_finite():
    G, D = tiny_networks()
    batches = Batches(batch=4, batch_gpu=1)  # ANDA 'sampled' at lam 0.99: most chunks hold only negatives
    loss = make_loss(G, D, 'plugins.Loss', lecam={'weight': 0.5}, anda={'lam': 0.99, 'estimator': 'sampled'})
    for _ in range(3):
        batch = batches.next()
        for phase in ('Gmain', 'Dmain'):
            gradients = phase_gradients(loss, G, D, batch, phase)
            assert all(torch.isfinite(g).all() for g in gradients), phase
    lecam = loss.methods['lecam']
    assert torch.isfinite(lecam.ema_fake.biased) and int(lecam.ema_real.steps) == 3 > int(lecam.ema_fake.steps)


@pytest.mark.parametrize('options, message', [
    ({'weight': -1}, r'weight must lie in \[0, inf\), got -1'),
    ({'weight': float('inf')}, 'weight must be a finite real number'),
    ({'decay': 1.0}, r'decay must lie in \[0, 1\), got 1.0'),
    ({'form': 'relu'}, "form must be one of 'released', 'paper'; got 'relu'"),
    ({'target': 0.6}, "lecam: unknown option 'target'; valid options: weight, decay, form"),
])
def test_bad_options_are_refused(options, message):
    from plugins import Loss
    with pytest.raises(ValueError, match=message):
        Loss.check_options(lecam=options)
