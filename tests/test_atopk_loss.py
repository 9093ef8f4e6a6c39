"""Tests of plugins.atopk.Loss on tiny upstream networks: only the selected fakes update G (Eq. 12), the adaptive
k follows Eq. 10-11, Linear Top-k, D and path-length regularisation exactly as upstream, and short train.py runs."""

import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from plugins.atopk.core import KController, linear_ramp_k, topk_gan_k
from tests.conftest import ROOT, invoke_train, read_stats, train
from tests.tiny import Batches, make_loss, one_thread, run_minibatch, tiny_networks  # noqa: F401 (one_thread: autouse fixture)


def collect_atopk():
    from torch_utils import training_stats
    collector = training_stats.Collector(regex='ATopk/.*', keep_previous=False)
    collector.update()  # discard whatever earlier tests reported
    return collector


# ----------------------------------------------------------------------------------------------------------------
# Eq. 12: only the selected fakes update G.

@pytest.mark.parametrize('batch_gpu', [8, 4])
@pytest.mark.parametrize('mode, options', [('adaptive', {}), ('fixed', {'k': 3}), ('worst', {}), ('worst', {'k': 5})])
def test_only_the_selected_fakes_give_G_gradient(mode, options, batch_gpu):
    G, D = tiny_networks()
    # speed_kimg so that one adjustment moves p by 1: p = 1 after minibatch 4, then k falls by one per minibatch.
    loss = make_loss(G, D, mode=mode, speed_kimg=8 * 4 / 1000, **options)
    batches = Batches(batch=8, batch_gpu=batch_gpu)
    D.offset = 50.0  # real logits positive: eta = 1 > target
    for _ in range(8):
        run_minibatch(loss, batches)
    D.offset = 0.0
    # Minibatch 8: adaptive k went 8 (minibatches 0-3, p = 0), 7 (p = 1 from minibatch 4), 6, 5, 4, 3.
    expected_k = options.get('k', 3)
    expected_chunk_ks = [expected_k] if batch_gpu == 8 else {3: [2, 1], 5: [3, 2]}[expected_k]

    real, real_c, z_chunks, c_chunks = batches.next()
    for round_index, (z, c) in enumerate(zip(z_chunks, c_chunks)):
        G.requires_grad_(True)
        D.requires_grad_(False)
        G.zero_grad(set_to_none=True)
        z = z.clone().requires_grad_(True)
        torch.manual_seed(1000 + round_index)  # the same style-mixing and noise draws in both computations
        loss.accumulate_gradients('Gmain', real[round_index], real_c[round_index], z, c,
                                  sync=round_index == len(z_chunks) - 1, gain=1)
        loss_grads = [p.grad.clone() for p in G.parameters()]
        assert loss.methods['atopk'].k == expected_k and loss.methods['atopk']._chunk_ks == expected_chunk_ks
        chunk_k = expected_chunk_ks[round_index]

        # Reference: an independent top-k loss on the same fakes.
        torch.manual_seed(1000 + round_index)
        z_ref = z.detach().clone().requires_grad_(True)
        img, _ws = loss.run_G(z_ref, c, sync=False)
        logits = D(img, c).flatten()
        order = torch.argsort(logits, descending=(mode != 'worst'))
        chosen = torch.sort(order[:chunk_k]).values
        divisor = expected_k / len(z_chunks)
        reference = torch.nn.functional.softplus(-logits[chosen]).sum() / divisor
        reference_grads = torch.autograd.grad(reference, list(G.parameters()), allow_unused=True)

        receives_gradient = torch.nonzero(z.grad.abs().sum(dim=1) > 0).flatten()
        assert receives_gradient.tolist() == chosen.tolist()
        extreme = logits.detach()[chosen]
        others = logits.detach()[[i for i in range(len(logits)) if i not in chosen.tolist()]]
        if others.numel():
            assert (extreme.min() >= others.max()) if mode != 'worst' else (extreme.max() <= others.min())
        for got, want in zip(loss_grads, reference_grads):
            torch.testing.assert_close(got, torch.zeros_like(got) if want is None else want, rtol=1e-4, atol=1e-6)


def test_first_minibatch_uses_every_fake_while_the_batch_is_learnt():
    G, D = tiny_networks()
    loss = make_loss(G, D, mode='fixed', k=2)
    batches = Batches(batch=8, batch_gpu=2)
    collector = collect_atopk()
    run_minibatch(loss, batches)
    assert (loss.tracker.batch_size, loss.tracker.chunk_sizes, loss.methods['atopk'].k) == (8, [2, 2, 2, 2], None)
    run_minibatch(loss, batches)
    assert loss.methods['atopk'].k == 2 and loss.methods['atopk']._chunk_ks == [1, 1, 1, 1]
    collector.update()
    assert collector.num('ATopk/k') == 2 and collector.mean('ATopk/k') == (8 + 2) / 2
    assert collector.mean('ATopk/fakes_used') == (8 + 4) / 2  # k = 2 < 4 chunks: one fake per chunk
    with pytest.raises(RuntimeError, match='batch structure'):
        run_minibatch(loss, Batches(batch=8, batch_gpu=4))


def test_fixed_k_above_the_batch_is_refused_once_the_batch_is_known():
    G, D = tiny_networks()
    loss = make_loss(G, D, mode='fixed', k=9)
    with pytest.raises(ValueError, match=r'k=9 exceeds the batch size 8; k must lie in \[1, 8\]'):
        run_minibatch(loss, Batches(batch=8, batch_gpu=8))


# ----------------------------------------------------------------------------------------------------------------
# Eq. 10-11: p and k.

def run_controller(seed=None, random_seed=0):
    G, D = tiny_networks()
    # batch 4, interval 4: one adjustment moves p by 4 * 4 / (0.064 * 1000) = 0.25.
    loss = make_loss(G, D, seed=seed, speed_kimg=0.064, random_seed=random_seed)
    batches = Batches(batch=4, batch_gpu=4)
    collector = collect_atopk()
    ps, ks, etas = [], [], []
    for offset, minibatches in ((50.0, 24), (-50.0, 56)):
        D.offset = offset
        for _ in range(minibatches):
            run_minibatch(loss, batches)
            collector.update()
            ps.append(collector.mean('ATopk/p'))
            ks.append(collector.mean('ATopk/k'))
            etas.append(collector.mean('ATopk/eta') if collector.num('ATopk/eta') else None)
            assert collector.mean('ATopk/fakes_used') == ks[-1]
            assert collector.num('ATopk/score_gap') == 1 and math.isfinite(collector.mean('ATopk/score_gap'))
    return ps, ks, etas, loss


def test_p_moves_at_the_specified_rate_and_k_follows_eq11():
    ps, ks, etas, loss = run_controller(seed=5)
    # Positive real logits: p rises by 0.25 after every 4th minibatch, past 1 (ADA's p has no cap; Eq. 11 draws
    # with it as a probability of 1 there), up to 1.5 for minibatches 24-27.
    assert ps[:28] == [0.25 * (m // 4) for m in range(28)]
    # Negative from minibatch 24: the adjustment after 24 still counted minibatches 20-23; p then falls by 0.25 after
    # every 4th minibatch down to 0 (minibatch 48) and stays there.
    assert ps[28:] == [max(1.5 - 0.25 * ((m - 24) // 4), 0.0) for m in range(28, 80)]
    # eta is reported where it is measured: after minibatches 4, 8, ... (indices 3, 7, ...), of the 4 before.
    assert etas[3] == 1.0 and etas[23] == 1.0 and etas[27] == -1.0 and etas[2] is None and etas[4] is None
    # k: starts at the batch, then Eq. 11 with the controller's seeded draws and the p of each minibatch.
    reference = KController(4, seed=5)
    assert ks == [4.0] + [float(reference.step(p)) for p in ps[1:]]
    assert 1.0 in ks[:28] and ks[79] == 4.0  # p >= 1 drives k to 1; p = 0 brings it back to the batch
    assert loss.p_host['atopk'] == 0.0 and float(loss.heuristics['atopk'].p) == 0.0


def test_controller_is_reproducible_from_its_seed():
    first, second = run_controller(seed=5), run_controller(seed=5)
    assert first[:3] == second[:3]


def test_controller_seed_defaults_to_the_runs_seed():
    walks = {run_seed: run_controller(random_seed=run_seed)[1] for run_seed in (5, 6)}
    assert walks[5] == run_controller(seed=5, random_seed=99)[1]    # a given seed overrides the run's
    assert walks[5] != walks[6]                                     # another run seed walks differently


# ----------------------------------------------------------------------------------------------------------------
# Linear Top-k.

def _linear_ks(loss, minibatches):
    batches = Batches(batch=4, batch_gpu=2)
    collector = collect_atopk()
    ks = []
    for _ in range(minibatches):
        run_minibatch(loss, batches)
        collector.update()
        ks.append(collector.mean('ATopk/k'))
    return ks


def test_linear_follows_topk_gans_schedule_over_epochs_of_the_training_set():
    G, D = tiny_networks()
    loss = make_loss(G, D, mode='linear', gamma=0.8, training_set_size=8)   # an epoch is 2 minibatches of 4
    ks = _linear_ks(loss, 12)
    assert ks == [float(topk_gan_k(m * 4, 4, 0.75, 0.8, 8)) for m in range(12)]
    assert ks == [4.0] * 4 + [3.0] * 8       # 4 * 0.8 = 3.2 -> 4 in epoch 1; 4 * 0.64 -> 3 from epoch 2


def test_linear_without_the_training_set_size_is_refused():
    G, D = tiny_networks()
    with pytest.raises(ValueError, match='training_set_size'):
        _linear_ks(make_loss(G, D, mode='linear'), 2)


def test_linear_ramp_reaches_ceil_nu_batch_within_linear_kimg():
    G, D = tiny_networks()
    loss = make_loss(G, D, mode='linear', schedule='ramp', nu=0.5, linear_kimg=0.04)  # 10 minibatches of 4
    batches = Batches(batch=4, batch_gpu=2)
    collector = collect_atopk()
    ks = []
    for _ in range(14):
        run_minibatch(loss, batches)
        collector.update()
        ks.append(collector.mean('ATopk/k'))
    assert ks == [float(linear_ramp_k(m * 4 / 1000, 4, 0.5, 0.04)) for m in range(14)]
    assert ks[:3] == [4.0] * 3 and ks[3:8] == [3.0] * 5 and ks[8:] == [2.0] * 6 == [float(math.ceil(0.5 * 4))] * 6
    assert loss.tracker.nimg == 14 * 4


# ----------------------------------------------------------------------------------------------------------------
# D and path-length regularisation are upstream's.

def test_D_and_G_regularisation_match_upstream():
    from training.loss import StyleGAN2Loss
    G, D = tiny_networks()
    atopk = make_loss(G, D, mode='fixed', k=1)
    upstream = StyleGAN2Loss(device=torch.device('cpu'), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                             r1_gamma=0.1)
    batches = Batches(batch=4, batch_gpu=4)
    run_minibatch(atopk, batches)
    real, real_c, z, c = batches.next()

    def grads(loss, phases, module):
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        torch.manual_seed(7)
        loss.pl_mean.zero_()
        for phase in phases:
            loss.accumulate_gradients(phase, real[0], real_c[0], z[0], c[0], sync=True, gain=2)
        return [p.grad.clone() for p in module.parameters()]

    seen = float(atopk.heuristics['atopk'].pending_count)
    for phase, module in [('Greg', G), ('Dmain', D), ('Dreg', D), ('Dboth', D)]:
        for ours, theirs in zip(grads(atopk, [phase], module), grads(upstream, [phase], module)):
            torch.testing.assert_close(ours, theirs)
    assert float(atopk.heuristics["atopk"].pending_count) == seen + 3 * 4  # real logits of Dmain, Dreg and Dboth, as ADA
    # Gboth is the top-k Gmain plus upstream's path-length term, drawn in the same order as upstream's Gboth.
    for ours, theirs in zip(grads(atopk, ['Gboth'], G), grads(atopk, ['Gmain', 'Greg'], G)):
        torch.testing.assert_close(ours, theirs)


# ----------------------------------------------------------------------------------------------------------------
# Options, state and pickling.

@pytest.mark.parametrize('options, message', [
    ({'mode': 'nope'}, "mode must be one of 'adaptive', 'fixed', 'linear', 'worst'; got 'nope'"),
    ({'mode': 'fixed'}, "mode 'fixed' needs an integer k >= 1"),
    ({'mode': 'fixed', 'k': 0}, r'k must lie in \[1, inf\), got 0'),
    ({'mode': 'fixed', 'k': 2.0}, 'k must be an integer, got 2.0'),
    ({'mode': 'linear', 'k': 2}, "k=2 applies only to mode 'fixed' or 'worst'"),
    ({'mode': 'linear', 'nu': 0}, r'nu must lie in \(0, 1\], got 0'),
    ({'mode': 'linear', 'nu': 1.5}, r'nu must lie in \(0, 1\], got 1.5'),
    ({'mode': 'linear', 'schedule': 'ramp', 'linear_kimg': 0}, r'linear_kimg must lie in \(0, inf\)'),
    ({'nu': 0.5, 'gamma': 0.9}, "nu, gamma apply only to mode 'linear' \\(Linear Top-k\\); mode is 'adaptive'"),
    ({'mode': 'worst', 'schedule': 'ramp'}, "schedule applies only to mode 'linear'"),
    ({'mode': 'linear', 'linear_kimg': 100}, "linear_kimg applies only to schedule 'ramp'"),
    ({'mode': 'linear', 'schedule': 'ramp', 'gamma': 0.9}, "gamma applies only to schedule 'topk_gan'"),
    ({'target': 1.2}, r'target must lie in \[0, 1\], got 1.2'),
    ({'speed_kimg': -1}, r'speed_kimg must lie in \(0, inf\)'),
    ({'interval': 0}, r'interval must lie in \[1, inf\)'),
    ({'seed': -1}, r'seed must lie in \[0, inf\)'),
])
def test_bad_options_are_refused_with_the_valid_range(options, message):
    from plugins.atopk import Loss
    with pytest.raises(ValueError, match=message):
        Loss.check_options(**options)
    G, D = tiny_networks()
    with pytest.raises(ValueError, match=message):
        make_loss(G, D, **options)


def test_state_survives_pickling_and_state_dict():
    G, D = tiny_networks()
    loss = make_loss(G, D, speed_kimg=0.064, seed=3)
    D.offset = 50.0
    batches = Batches(batch=4, batch_gpu=2, seed=9)
    for _ in range(10):
        run_minibatch(loss, batches)
    copy = pickle.loads(pickle.dumps(loss))
    restored = make_loss(G, D, speed_kimg=0.064, seed=3)
    restored.load_state_dict(loss.state_dict())
    assert copy.state_dict()['methods']['atopk']['controller'][1]['k'] == loss.methods['atopk'].k
    ks = {name: [] for name in ('original', 'copy', 'restored')}
    for name, other in (('original', loss), ('copy', copy), ('restored', restored)):
        other.D.offset = 50.0
        twin = Batches(batch=4, batch_gpu=2, seed=10)
        for _ in range(12):
            run_minibatch(other, twin)
            ks[name].append(other.methods['atopk'].k)
    assert ks['original'] == ks['copy'] == ks['restored']
    assert float(copy.heuristics['atopk'].p) == float(loss.heuristics['atopk'].p) == float(restored.heuristics['atopk'].p) > 0


def test_importing_the_package_does_not_import_upstream():
    code = 'import sys, plugins.atopk; assert "training" not in sys.modules and "torch_utils" not in sys.modules'
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


# ----------------------------------------------------------------------------------------------------------------
# train.py.

TRAIN_CASES = {
    'adaptive': {},
    'fixed': {'mode': 'fixed', 'k': 2},
    'linear': {'mode': 'linear', 'nu': 0.5, 'gamma': 0.5},
    'worst': {'mode': 'worst'},
}


@pytest.mark.parametrize('mode', list(TRAIN_CASES))
def test_train_py_runs_and_reports(tmp_path, dataset16, monkeypatch, mode):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # two threads on a shared 2-core machine can be 100x slower
    options = TRAIN_CASES[mode]
    run_dir = train(tmp_path, dataset16, '--kimg', 0.05, '--aug', 'noaug', '--loss', 'plugins.atopk.Loss',
                    '--loss-kwargs', json.dumps(options))
    stats = read_stats(run_dir)
    for key in ('ATopk/k', 'ATopk/fakes_used', 'ATopk/p', 'ATopk/score_gap'):
        assert all(key in tick for tick in stats), key
    assert 'ATopk/eta' in stats[-1]  # adjusted at minibatches 4, 8 and 12
    last = stats[-1]
    assert last['ATopk/k']['num'] == 12  # one per minibatch: 13 minibatches, the first in tick 0
    assert stats[0]['ATopk/k']['mean'] == 4  # the first minibatch uses the whole batch
    if mode == 'fixed':
        assert last['ATopk/k']['mean'] == 2 and last['ATopk/fakes_used']['mean'] == 2
    written = json.loads((run_dir / 'training_options.json').read_text())['loss_kwargs']
    assert written['training_set_size'] == 16 and written['random_seed'] == 0   # passed by train.py (patch 0010)
    if mode == 'linear':  # 16 images: 4 in the first epoch (4 minibatches), then 2
        expected = np.mean([topk_gan_k(m * 4, 4, 0.5, 0.5, 16) for m in range(1, 13)])
        assert expected == pytest.approx(np.mean([4] * 3 + [2] * 9))
        assert last['ATopk/k']['mean'] == pytest.approx(expected)
    assert written['class_name'] == 'plugins.atopk.Loss'
    assert {name: written[name] for name in options} == options
    assert 'r1_gamma' in written  # the base config's loss settings still reach the loss


def test_train_py_refuses_an_unknown_mode(tmp_path, dataset16):
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', dataset16, '--cfg', 'cpu',
                                     '--loss', 'plugins.atopk.Loss', '--loss-kwargs', '{"mode": "nope"}')
    assert exit_code == 2, output
    assert "--loss: mode must be one of 'adaptive', 'fixed', 'linear', 'worst'; got 'nope'" in output
    assert not (tmp_path / 'runs').exists()
