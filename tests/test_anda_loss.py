"""plugins.anda.Loss on tiny upstream networks: the sampled mixture's rate, the weighted estimator against Eq. S4,
alpha = 1 as upstream, negatives never reaching G, alpha's sources, option errors, and train.py runs."""

import json
import math

import pytest
import torch

from plugins.common.contexts import Run
from tests.conftest import read_stats, train
from tests.tiny import Batches, make_loss, one_thread, phase_gradients, run_minibatch, tiny_networks  # noqa: F401 (autouse fixture)


class RecordingD(torch.nn.Module):
    """A D that keeps a copy of every batch it sees."""

    def __init__(self, D):
        super().__init__()
        self.D = D
        self.inputs = []

    def forward(self, img, c):
        self.inputs.append(img.detach().clone())
        return self.D(img, c)


def is_jigsaw_of(negatives, reals):
    """Each negative holds exactly its real image's pixel values (a permutation of its patches) and differs from it."""
    return holds_the_values_of(negatives, reals) and not (negatives == reals).flatten(1).all(dim=1).any()


def holds_the_values_of(negatives, reals):
    return torch.equal(negatives.flatten(1).sort().values, reals.flatten(1).sort().values)


def test_released_estimator_draws_negatives_in_G_main_and_uses_the_last_G_rounds_in_D():
    """As released: NDA(x) of each G main round's reals, and every D main round blends the last one's."""
    G, D = tiny_networks()
    recording = RecordingD(D)
    loss = make_loss(G, recording, 'plugins.anda.Loss', speed_kimg=1e-9)  # released estimator and jigsaw
    anda = loss.methods['anda']
    real, real_c, z, c = Batches(batch=8, batch_gpu=4).next()
    pseudo = []
    for index in range(2):
        loss.accumulate_gradients('Gmain', real[index], real_c[index], z[index], c[index], sync=index == 1, gain=1)
        assert holds_the_values_of(anda.pseudo, real[index])
        pseudo.append(anda.pseudo)
    recording.inputs.clear()
    torch.manual_seed(5)
    for index in range(2):  # alpha = p = 0: no flag fires, every D main round blends 0.2 * NDA(x) + 0.8 * G(z)
        loss.accumulate_gradients('Dmain', real[index], real_c[index], z[index], c[index], sync=index == 1, gain=1)
        assert anda.pseudo is pseudo[1]
    torch.manual_seed(5)
    for index in range(2):
        gen_img, _ = loss.run_G(z[index], c[index], sync=False)
        torch.rand([4])  # the round's flags
        assert torch.equal(recording.inputs[2 * index], 0.2 * pseudo[1] + 0.8 * gen_img.detach())


def test_sampled_puts_negatives_at_rate_lam_times_one_minus_alpha():
    from plugins.anda.method import ANDA
    anda = ANDA(lam=0.5, estimator='sampled', permutation='non_identity')
    generator = torch.Generator().manual_seed(0)
    real = torch.rand([64, 3, 8, 8], generator=generator) * 2 - 1
    fake = torch.rand([64, 3, 8, 8], generator=generator) + 5  # values no real image has
    torch.manual_seed(1)
    trials, negatives = 200, 0
    for _ in range(trials):
        (images, weight, is_negative), = anda.d_fake_inputs(fake, real, p=torch.tensor(0.4))
        assert weight is None and is_negative.dtype == torch.bool
        assert torch.equal(images[~is_negative], fake[~is_negative])
        assert is_jigsaw_of(images[is_negative], real[is_negative])
        negatives += int(is_negative.sum())
    slots, rate = 64 * trials, 0.5 * (1 - 0.4)
    assert abs(negatives - slots * rate) < 4 * math.sqrt(slots * rate * (1 - rate))


def test_weighted_matches_eq_s4_on_a_tiny_D():
    G, D = tiny_networks()
    recording = RecordingD(D)
    loss = make_loss(G, recording, 'plugins.anda.Loss', estimator='weighted', lam=0.3, permutation='non_identity')
    loss.heuristics['anda'].p.fill_(0.25)  # alpha: the negatives' weight is 0.3 * 0.75
    real, real_c, z, c = Batches(batch=4, batch_gpu=4).next()
    G.requires_grad_(False)
    D.requires_grad_(True)
    loss.accumulate_gradients('Dmain', real[0], real_c[0], z[0], c[0], sync=True, gain=1)
    ours = [p.grad.clone() for p in D.parameters()]
    fakes, negatives, reals = recording.inputs
    assert torch.equal(reals, real[0]) and is_jigsaw_of(negatives, real[0])

    D.zero_grad(set_to_none=True)
    weight = 0.3 * 0.75
    sp = torch.nn.functional.softplus
    eq_s4 = sp(-D(reals, c[0])).mean() + (1 - weight) * sp(D(fakes, c[0])).mean() + weight * sp(D(negatives, c[0])).mean()
    eq_s4.backward()
    for got, want in zip(ours, (p.grad for p in D.parameters())):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize('estimator', ['sampled', 'weighted', 'released'])
def test_alpha_one_is_the_upstream_loss_exactly(estimator):
    from training.loss import StyleGAN2Loss
    G, D = tiny_networks()
    anda = make_loss(G, D, 'plugins.anda.Loss', estimator=estimator, lam=0.5)
    anda.heuristics['anda'].p.fill_(1.0)
    upstream = StyleGAN2Loss(device=torch.device('cpu'), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D, r1_gamma=0.1)
    batch = Batches(batch=4, batch_gpu=4).next()
    for phase in ['Gmain', 'Dmain', 'Dreg', 'Dboth']:
        for ours, theirs in zip(phase_gradients(anda, G, D, batch, phase),
                                phase_gradients(upstream, G, D, batch, phase)):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_negatives_never_reach_G():
    from plugins.anda.method import ANDA
    G, D = tiny_networks()
    real, real_c, z, c = Batches(batch=8, batch_gpu=8).next()
    torch.manual_seed(3)
    fakes = G(z[0], c[0])  # differentiable wrt G
    fakes.retain_grad()
    (images, _, is_negative), = ANDA(lam=0.5, estimator='sampled').d_fake_inputs(fakes, real[0].requires_grad_(True), torch.tensor(0.0))
    assert 0 < int(is_negative.sum()) < 8
    torch.nn.functional.softplus(D(images, c[0])).sum().backward()
    assert (fakes.grad[is_negative] == 0).all()
    assert (fakes.grad[~is_negative].flatten(1).abs().sum(dim=1) > 0).all()
    assert real[0].grad is None  # negatives are built from detached reals

    (gen, _, _), (negatives, _, _) = ANDA(estimator='weighted').d_fake_inputs(fakes, real[0], torch.tensor(0.0))
    assert gen is fakes and negatives.grad_fn is None and not negatives.requires_grad


def collect(prefix):
    from torch_utils import training_stats
    collector = training_stats.Collector(regex=prefix + '.*', keep_previous=False)
    collector.update()
    return collector


def test_alpha_follows_the_heuristic_and_the_stats_are_reported():
    G, D = tiny_networks()
    loss = make_loss(G, D, 'plugins.anda.Loss', estimator='sampled', speed_kimg=0.064)  # a step moves p by 0.25
    batches = Batches(batch=4, batch_gpu=2)
    collector = collect('ANDA/')
    D.offset = 50.0  # reals positive: eta = 1 > target, p rises
    alphas = []
    for _ in range(12):
        run_minibatch(loss, batches)
        collector.update()
        alphas.append(collector.mean('ANDA/alpha'))
        assert collector.num('ANDA/negative_share') == 4  # one per fake slot
        share = collector.mean('ANDA/negative_share')
        assert collector.num('ANDA/scores/negative') == round(share * 4)
        assert math.isfinite(collector.mean('ANDA/score_gap'))
    assert alphas == [0.25 * (m // 4) for m in range(12)]
    assert float(loss.heuristics['anda'].p) == 0.75  # moved after the 12th minibatch, for the 13th


def test_alpha_can_follow_ADA_p():
    from training.augment import AugmentPipe
    G, D = tiny_networks()
    pipe = AugmentPipe(xflip=1)
    pipe.p.fill_(0.3)
    loss = make_loss(G, D, 'plugins.anda.Loss', alpha='ada', augment_pipe=pipe)
    assert loss.heuristics == {}
    collector = collect('ANDA/')
    run_minibatch(loss, Batches(batch=4, batch_gpu=4))
    collector.update()
    assert collector.mean('ANDA/alpha') == pytest.approx(0.3)
    with pytest.raises(ValueError, match="alpha='ada' follows the augment pipe's p, but this run has no augment pipe"):
        make_loss(G, D, 'plugins.anda.Loss', alpha='ada')


@pytest.mark.parametrize('options, message', [
    ({'lam': 1.0}, r'lam must lie in \[0, 1\), got 1.0'),
    ({'lam': -0.1}, r'lam must lie in \[0, 1\), got -0.1'),
    ({'estimator': 'exact'}, "estimator must be one of 'released', 'sampled', 'weighted'; got 'exact'"),
    ({'alpha': 'fixed'}, "alpha must be one of 'auto', 'ada', 'heuristic'; got 'fixed'"),
    ({'negative': 'blur'}, "negative must be one of 'jigsaw', 'stitch', 'cutout', 'mixup', 'cutmix', 'rotation'; got 'blur'"),
    ({'grid': 5}, r'grid must lie in \[2, 4\], got 5'),
    ({'negative': 'cutout', 'grid': 3}, "grid=3 applies only to negative 'jigsaw', not 'cutout'"),
    ({'alpha': 'ada', 'target': 0.5}, "anda: target set the overfitting heuristic, which anda does not use"),
    ({'target': 0.5, 'ada_target': 0.6}, r"which anda does not use with these options \(alpha is ADA's p\)"),
    ({'alpha': 'ada', 'augment_pipe': True, 'augment_p': 1.0},
     r"ANDA alpha='ada' follows the augment pipe's p, which this run fixes at 1 \(no --target\): alpha would be 1 "
     r"throughout, so D would never see a negative"),
])
def test_bad_options_are_refused(options, message):
    from plugins.anda import Loss
    with pytest.raises(ValueError, match=message):
        Loss.check_options(**options)


def test_defaults_are_the_released_estimator_with_alpha_from_ADA_when_p_adapts():
    from training.augment import AugmentPipe
    G, D = tiny_networks()
    pipe = AugmentPipe(xflip=1)
    pipe.p.fill_(0.3)
    adapting = make_loss(G, D, 'plugins.anda.Loss', augment_pipe=pipe, ada_target=0.6)
    anda = adapting.methods['anda']
    assert anda.estimator == 'released' and anda.alpha_source == 'ada' and adapting.heuristics == {}
    assert anda.setup(Run(augment_pipe=pipe)) == "ANDA: alpha is the augment pipe's p (ADA, target 0.6)"
    assert make_loss(G, D, 'plugins.anda.Loss', augment_pipe=pipe, alpha='ada').methods['anda'].setup(Run(pipe)) == \
        "ANDA: alpha is the augment pipe's p, fixed at 0.3 (no --target)"
    fixed_p = make_loss(G, D, 'plugins.anda.Loss', augment_pipe=pipe)       # --aug fixed, or a pipe at p = 1
    assert fixed_p.methods['anda'].alpha_source == 'heuristic' and 'anda' in fixed_p.heuristics
    no_pipe = make_loss(G, D, 'plugins.anda.Loss')
    assert no_pipe.methods['anda'].setup(Run(None)) == "ANDA: alpha is the overfitting heuristic's p (Eq. 10)"


@pytest.mark.parametrize('estimator, aug', [('sampled', 'noaug'), ('weighted', 'ada'), ('released', 'ada')])
def test_train_py_runs_each_estimator(tmp_path, dataset16, estimator, aug):
    options = {'estimator': estimator, 'lam': 0.5}
    run_dir = train(tmp_path, dataset16, '--kimg', '0.05', '--aug', aug, '--loss', 'plugins.anda.Loss',
                    '--loss-kwargs', json.dumps(options))
    stats = read_stats(run_dir)[-1]
    for key in ['ANDA/alpha', 'ANDA/negative_share', 'ANDA/score_gap', 'ANDA/eta' if aug == 'noaug' else
                'Progress/augment']:
        assert key in stats and math.isfinite(stats[key]['mean']), key
    assert '-anda-' in run_dir.name and f'-estimator={estimator}-' in run_dir.name
    source = "the augment pipe's p (ADA, target 0.6)" if aug == 'ada' else "the overfitting heuristic's p (Eq. 10)"
    assert f'ANDA: alpha is {source}' in (run_dir / 'log.txt').read_text()
    written = json.loads((run_dir / 'training_options.json').read_text())['loss_kwargs']
    assert written['ada_target'] == (0.6 if aug == 'ada' else None)
