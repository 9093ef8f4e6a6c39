"""plugins.Loss, the combination of the registered methods: presets equal the combination with one method, a method
switched off equals its absence, one shared heuristic, option errors; every pair of ATop-k, ANDA and DigGAN and the
triple, and each of them with APA and LeCam and with InsGen, over the training loop's phases with each kind of
augment pipe (DiffAugment, ADA adapting, a fixed p, none) and both DigGAN cadences; and one train.py run of all six
methods at once."""

import copy
import json
import math

import pytest
import torch

from plugins.methods import stats_prefixes
from tests.conftest import read_stats, run_upstream, train
from tests.tiny import Batches, make_loss, one_thread, tiny_networks  # noqa: F401 (autouse fixture)

SCHEDULE = [('Gmain', 1), ('Greg', 4), ('Dmain', 1), ('Dreg', 4)]  # (phase, every n-th minibatch)


def gradient_trace(loss_class, minibatches=10, batch_gpu=2, **options):
    """Every phase's gradients over several minibatches of the training loop's schedule, with fixed seeds; the
    networks are fresh copies, so different losses see identical inputs. Reals score high from minibatch 2 on so
    that the heuristic's p moves."""
    G, D = tiny_networks()
    loss = make_loss(G, D, loss_class, **options)
    batches = Batches(batch=4, batch_gpu=batch_gpu)
    trace = []
    for minibatch in range(minibatches):
        D.offset = 5.0 if minibatch >= 2 else 0.0
        real, real_c, z, c = batches.next()
        for phase, every in SCHEDULE:
            if minibatch % every:
                continue
            module = G if phase.startswith('G') else D
            G.requires_grad_(module is G)
            D.requires_grad_(module is D)
            module.zero_grad(set_to_none=True)
            for index in range(len(real)):
                torch.manual_seed(1000 * minibatch + 10 * index + len(phase))
                loss.accumulate_gradients(phase, real[index], real_c[index], z[index], c[index],
                                          sync=index == len(real) - 1, gain=every)
            trace.append([torch.zeros([]) if p.grad is None else p.grad.clone() for p in module.parameters()])
        if hasattr(loss, 'after_minibatch'):
            loss.after_minibatch(minibatch + 1)
    return trace, loss


def assert_same_trace(first, second):
    assert len(first) == len(second)
    for step_first, step_second in zip(first, second):
        for a, b in zip(step_first, step_second):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


HEURISTIC = {'speed_kimg': 0.032}  # one adjustment moves p by 0.5


@pytest.mark.parametrize('preset, options', [
    ('plugins.atopk.Loss', {'mode': 'adaptive', **HEURISTIC}),
    ('plugins.anda.Loss', {'estimator': 'sampled', 'lam': 0.5, **HEURISTIC}),
    ('plugins.diggan.Loss', {'weight': 10.0, 'cadence': 'every'}),
    ('plugins.apa.Loss', {'p': 'heuristic', **HEURISTIC}),
    ('plugins.lecam.Loss', {'weight': 0.1, 'form': 'paper'}),
])
def test_presets_give_the_numbers_of_the_combined_loss(preset, options):
    method = preset.split('.')[1]
    from_preset, preset_loss = gradient_trace(preset, **options)
    combined, combined_loss = gradient_trace('plugins.Loss', **{method: options})
    assert_same_trace(from_preset, combined)
    assert type(preset_loss).__mro__[1] is type(combined_loss)


@pytest.mark.parametrize('with_off, without', [
    ({'atopk': HEURISTIC, 'diggan': {'weight': 0.0}}, {'atopk': HEURISTIC}),
    ({'diggan': {'weight': 10.0}, 'anda': {'lam': 0.0}}, {'diggan': {'weight': 10.0}}),
    ({'anda': {'lam': 0.5, **HEURISTIC}, 'atopk': {'mode': 'fixed', 'k': 4, **HEURISTIC}},
     {'anda': {'lam': 0.5, **HEURISTIC}}),
    ({'anda': {'lam': 0.5, **HEURISTIC}, 'atopk': False, 'diggan': None}, {'anda': {'lam': 0.5, **HEURISTIC}}),
    ({'atopk': HEURISTIC, 'apa': {'p': 0.0}, 'lecam': {'weight': 0.0}}, {'atopk': HEURISTIC}),
    ({'diggan': {'weight': 10.0}, 'lecam': {'weight': 0.0}}, {'diggan': {'weight': 10.0}}),
])
def test_a_method_switched_off_is_the_combination_without_it(with_off, without):
    assert_same_trace(gradient_trace('plugins.Loss', **with_off)[0], gradient_trace('plugins.Loss', **without)[0])


def test_no_method_is_upstream():
    upstream, _ = gradient_trace('training.loss.StyleGAN2Loss')
    assert_same_trace(gradient_trace('plugins.Loss')[0], upstream)


def test_the_adapting_methods_share_one_p_unless_asked_otherwise():
    from torch_utils import training_stats
    collector = training_stats.Collector(regex='(ATopk/p|ANDA/alpha)', keep_previous=False)
    collector.update()
    _, shared = gradient_trace('plugins.Loss', atopk=HEURISTIC, anda=HEURISTIC)
    collector.update()
    assert shared.heuristics['atopk'] is shared.heuristics['anda']
    assert float(shared.heuristics['atopk'].p) == 1.0  # +0.5 at minibatches 4 and 8
    assert collector.mean('ATopk/p') == pytest.approx(collector.mean('ANDA/alpha'))

    _, separate = gradient_trace('plugins.Loss', shared_heuristic=False, atopk=HEURISTIC,
                                 anda={'target': 1.0, **HEURISTIC})  # eta = 1 never exceeds it
    assert separate.heuristics['atopk'] is not separate.heuristics['anda']
    assert float(separate.heuristics['atopk'].p) == 1.0 and float(separate.heuristics['anda'].p) == 0.0


@pytest.mark.parametrize('options, message', [
    ({'atopk': {'target': 0.5}, 'anda': {}}, 'the methods share one overfitting heuristic, but their settings differ'),
    ({'atopk': 3}, r'atopk must be an object of atopk options, true \(defaults\) or false/null \(off\); got 3'),
    ({'atopk': {'kk': 3}}, "atopk: unknown option 'kk'; valid options: mode, k, schedule, nu, gamma, linear_kimg, seed, target"),
    ({'anda': {'lam': 2}}, r'lam must lie in \[0, 1\), got 2'),
    ({'shared_heuristic': 'yes'}, 'shared_heuristic must be of type bool'),
])
def test_bad_options_are_refused(options, message):
    from plugins import Loss
    with pytest.raises(ValueError, match=message):
        Loss.check_options(**options)


def test_state_dict_restores_every_method():
    options = dict(atopk=HEURISTIC, anda=HEURISTIC, diggan={'weight': 10.0, 'smoothing': 0.5, 'cadence': 'every'})
    _, loss = gradient_trace('plugins.Loss', **options)
    state = copy.deepcopy(loss.state_dict())
    G, D = tiny_networks()
    restored = make_loss(G, D, 'plugins.Loss', **options)
    restored.load_state_dict(state)
    assert restored.tracker.nimg == loss.tracker.nimg == 10 * 4
    assert float(restored.heuristics['anda'].p) == float(loss.heuristics['anda'].p) > 0
    assert restored.methods['atopk'].controller.state_dict()['k'] == loss.methods['atopk'].controller.state_dict()['k']
    assert torch.equal(restored.methods['diggan'].real_smoother.previous, loss.methods['diggan'].real_smoother.previous)
    assert torch.equal(restored.pl_mean, loss.pl_mean)
    with pytest.raises(ValueError, match=r"the saved loss state holds methods \['anda', 'atopk', 'diggan'\]"):
        make_loss(G, D, 'plugins.Loss', atopk=True).load_state_dict(state)


# ----------------------------------------------------------------------------------------------------------------
# train.py runs.

QUEUES = {'real_queue_size': 4, 'fake_queue_size': 4}  # the default, 5% of the 16 images, would be 0
COMBINATIONS = [  # (options, augmentation, stats prefixes)
    ({'atopk': {}, 'anda': {}}, 'diffaug', ['ATopk', 'ANDA']),
    ({'atopk': {'mode': 'fixed', 'k': 2}, 'diggan': {'weight': 10, 'cadence': 'lazy', 'wrt': 'before'}}, 'ada',
     ['ATopk', 'DigGAN']),
    ({'anda': {'estimator': 'weighted'}, 'diggan': {'cadence': 'every', 'wrt': 'after'}}, 'ada', ['ANDA', 'DigGAN']),
    ({'atopk': {}, 'anda': {}, 'diggan': {'cadence': 'every'}}, 'fixed', ['ATopk', 'ANDA', 'DigGAN']),
    ({'atopk': {}, 'apa': {}, 'lecam': {'weight': 0.01}}, 'diffaug', ['ATopk', 'APA', 'LeCam']),
    ({'anda': {}, 'apa': {}, 'lecam': {}}, 'ada', ['ANDA', 'APA', 'LeCam']),
    ({'diggan': {'cadence': 'lazy'}, 'apa': {'p': 0.5}, 'lecam': {'form': 'paper'}}, 'noaug',
     ['DigGAN', 'APA', 'LeCam']),
    ({'insgen': QUEUES, 'atopk': {}}, 'ada', ['InsGen', 'ATopk']),
    ({'insgen': QUEUES, 'anda': {}}, 'diffaug', ['InsGen', 'ANDA']),
    ({'insgen': QUEUES, 'diggan': {'cadence': 'every'}}, 'fixed', ['InsGen', 'DigGAN']),
]
PREFIXES = set(stats_prefixes())


def expected_stats(prefixes, aug, options):
    """The stats keys each method reports over a run: the heuristic's eta only where it sets p, which with ADA's
    adapting p it does not for ANDA and APA, nor for a fixed APA p."""
    expected = {'ATopk': ['ATopk/k', 'ATopk/p', 'ATopk/fakes_used', 'ATopk/score_gap', 'ATopk/eta'],
                'ANDA': ['ANDA/alpha', 'ANDA/negative_share', 'ANDA/score_gap', 'ANDA/scores/negative', 'ANDA/eta'],
                'DigGAN': ['DigGAN/real_norm', 'DigGAN/fake_norm', 'DigGAN/gap', 'DigGAN/penalty'],
                'APA': ['APA/p', 'APA/pseudo_share', 'APA/eta'],
                'LeCam': ['LeCam/penalty', 'LeCam/ema_real', 'LeCam/ema_fake'],
                'InsGen': ['InsGen/real_instance', 'InsGen/fake_instance', 'InsGen/fake_instance_G']}
    if aug == 'ada':
        expected['ANDA'].remove('ANDA/eta')
        expected['APA'].remove('APA/eta')
    if options.get('apa', {}).get('p') == 0.5:
        expected['APA'].remove('APA/eta')
    return [key for prefix in prefixes for key in expected[prefix]]


def augment_pipe(aug):
    """The pipe and ADA target train.py gives a loss for --aug ada (p adapts), fixed (--p 0.2), DiffAugment, noaug."""
    from training.augment import AugmentPipe

    from plugins.diffaug import AugmentPipe as DiffAugment
    if aug in ('ada', 'fixed'):
        pipe = AugmentPipe(xflip=1, rotate90=1, xint=1)
        pipe.p.fill_(0.2)
        return pipe, 0.6 if aug == 'ada' else None
    return (DiffAugment(), None) if aug == 'diffaug' else (None, None)


@pytest.mark.parametrize('options, aug, prefixes', COMBINATIONS, ids=['+'.join(c[2]) for c in COMBINATIONS])
def test_every_pair_and_the_triple_report_their_stats_over_every_phase(options, aug, prefixes):
    from torch_utils import training_stats
    pipe, ada_target = augment_pipe(aug)
    collector = training_stats.Collector(regex='|'.join(f'{prefix}/.*' for prefix in PREFIXES))
    gradient_trace('plugins.Loss', minibatches=8, augment_pipe=pipe, ada_target=ada_target, training_set_size=16,
                   **copy.deepcopy(options))  # every phase, R1 and G's regulariser at every 4th minibatch
    collector.update()
    stats = {key: value for key, value in collector.as_dict().items() if value['num'] > 0}  # reported in this run
    for key in expected_stats(prefixes, aug, options):
        assert key in stats and math.isfinite(stats[key]['mean']), key
    assert not [key for key in stats if key.split('/')[0] not in prefixes]
    if options.get('apa', {}).get('p') == 0.5:
        assert stats['APA/p']['mean'] == 0.5


def test_train_py_runs_every_method_at_once(tmp_path, dataset16):
    """All six loss methods in one train.py run (no two set the same thing): each one's stats reach stats.jsonl,
    its options training_options.json and its name the run's, and the snapshot loads in upstream's generate.py."""
    options = {'atopk': {}, 'anda': {'estimator': 'weighted'}, 'diggan': {'weight': 10}, 'apa': {},
               'lecam': {'weight': 0.01}, 'insgen': QUEUES}
    run_dir = train(tmp_path, dataset16, '--kimg', '0.05', '--aug', 'ada', '--loss', 'plugins.Loss',
                    '--loss-kwargs', json.dumps(options))
    stats = read_stats(run_dir)[-1]
    for key in expected_stats(sorted(PREFIXES - {'Diffusion'}), 'ada', options):
        assert key in stats and math.isfinite(stats[key]['mean']), key
    training_options = json.loads((run_dir / 'training_options.json').read_text())
    assert training_options['loss_kwargs']['class_name'] == 'plugins.Loss'
    for method, method_options in options.items():
        assert training_options['loss_kwargs'][method] == method_options
        assert f'-{method}' in run_dir.name
    run_upstream('generate.py', '--network', max(run_dir.glob('network-snapshot-*.pkl')), '--seeds', '0',
                 '--outdir', tmp_path / 'images')
    assert (tmp_path / 'images' / 'seed0000.png').is_file()


def test_a_method_at_its_neutral_setting_says_in_the_log_that_it_is_off(capsys):
    G, D = tiny_networks()
    make_loss(G, D, 'plugins.Loss', anda=dict(lam=0.0), lecam=dict(weight=0.0), diggan={})
    make_loss(G, D, 'plugins.apa.Loss', p=0)
    make_loss(G, D, 'plugins.atopk.Loss', mode='fixed', k=4, batch_size=4)
    make_loss(G, D, 'plugins.atopk.Loss', mode='fixed', k=3, batch_size=4)
    out = capsys.readouterr().out
    assert 'anda: off with these options (lam=0.0): the loss runs as without it' in out
    assert 'lecam: off with these options (weight=0.0): the loss runs as without it' in out
    assert 'apa: off with these options (p=0): the loss runs as without it' in out
    assert "atopk: off with these options (mode='fixed', k=4, the whole batch)" in out and 'k=3' not in out
    assert 'diggan: off' not in out
