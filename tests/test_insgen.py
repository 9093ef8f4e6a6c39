"""InsGen (plugins.insgen): the contrastive head's loss, queue and momentum MLP against independent computations,
D's and G's gradients on tiny upstream networks against autograd of the terms computed apart, the released
settings, option errors, and train.py runs (InsGen alone here; its pairs in test_plugin_loss.py, exact resume and
two ranks in test_reliability.py). In a scratch comparison with the released code (genforce/insgen
`StyleGAN2LossCL`, `CLHead` and the training loop's momentum D and head optimizers, on the CPU) G's and D's
gradients, both heads and the momentum D were equal bit for bit over four minibatches, in one and in two chunks."""

import collections
import copy
import json

import pytest
import torch

from tests.conftest import read_stats, run_upstream, train
from tests.test_plugin_loss import assert_same_trace, gradient_trace
from tests.tiny import Batches, make_loss, one_thread, phase_gradients, tiny_networks  # noqa: F401 (autouse fixture)


class IdentityPipe(torch.nn.Module):
    """An augment pipe whose two views are the image itself, so the terms can be recomputed without its draws."""

    def forward(self, images):
        return images


def infonce(query, key, queue, temperature):
    """-log softmax of the positive among [q.k, q.queue] / T, averaged over the batch, in float64."""
    query, key, queue = query.double(), key.double(), queue.double()
    losses = []
    for q, k in zip(query, key):
        logits = torch.cat([(q * k).sum().reshape(1), q @ queue]) / temperature
        losses.append(torch.logsumexp(logits, 0) - logits[0])
    return torch.stack(losses).mean()


def project(mlp, features):
    return torch.nn.functional.normalize(mlp(features.mean([2, 3])), dim=1)


def features(D, images):
    """D's blocks down to 4x4, run by hand: the input of its epilogue (the tests' D and its copy are OffsetDs)."""
    inner = D.D
    x = None
    for resolution in inner.block_resolutions:
        x, images = getattr(inner, f'b{resolution}')(x, images)
    return x


# ----------------------------------------------------------------------------------------------------------------
# The head.

def test_head_loss_momentum_and_queue_over_several_calls():
    from plugins.insgen.core import ContrastiveHead
    generator = torch.Generator().manual_seed(0)
    head = ContrastiveHead(8, queue_size=5, temperature=0.2, momentum=0.9, generator=generator)
    assert torch.equal(head.momentum_mlp[0].weight, head.mlp[0].weight)  # the key MLP starts as the query MLP
    assert torch.allclose(head.queue.norm(dim=0), torch.ones(5))
    with torch.no_grad():
        for param in head.mlp.parameters():  # make the two MLPs differ, so that the momentum step shows
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    model = collections.deque(head.queue.T.clone(), maxlen=5)  # the queue as a ring: oldest entries overwritten
    for call in range(4):
        query_features = torch.randn([3, 8, 4, 4], generator=generator)
        key_features = torch.randn([3, 8, 4, 4], generator=generator)
        mlp, key_mlp, queue = copy.deepcopy(head.mlp), copy.deepcopy(head.momentum_mlp), head.queue.clone()
        expected_key_mlp = [0.9 * k + 0.1 * q for k, q in zip(key_mlp.parameters(), mlp.parameters())]
        for param, value in zip(key_mlp.parameters(), expected_key_mlp):
            param.data.copy_(value)
        key = project(key_mlp, key_features)
        enqueue = ['keys', 'queries', None, 'keys'][call]
        loss = head(query_features, key_features, enqueue=enqueue)
        expected = infonce(project(mlp, query_features), key, queue, 0.2)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
        for param, value in zip(head.momentum_mlp.parameters(), expected_key_mlp):
            torch.testing.assert_close(param, value)
        added = {'keys': key, 'queries': project(key_mlp, query_features), None: torch.zeros([0, 128])}[enqueue]
        model.extend(added.detach())
        ring = torch.stack(list(model))  # oldest first; the buffer's pointer is where the oldest entry sits
        pointer = int(head.queue_ptr)
        torch.testing.assert_close(torch.roll(head.queue.T, -pointer, dims=0), ring)
    assert int(head.queue_ptr) == (9 % 5)  # 3 + 3 + 3 keys into 5 slots


def test_a_batch_longer_than_the_queue_fills_it_with_its_first_keys():
    from plugins.insgen.core import ContrastiveHead
    head = ContrastiveHead(4, queue_size=2, generator=torch.Generator().manual_seed(0))
    keys = torch.nn.functional.normalize(torch.randn([3, 128]), dim=1)
    head.enqueue(keys)
    assert torch.equal(head.queue.T, keys[:2]) and int(head.queue_ptr) == 0


def test_released_settings():
    from plugins.insgen.core import default_queue_size, lazy_regularization_optimizer
    assert [default_queue_size(100, False), default_queue_size(100, True), default_queue_size(70000, False)] == \
        [5, 10, 3500]
    adam = {'class_name': 'torch.optim.Adam', 'lr': 0.0025, 'betas': [0, 0.99], 'eps': 1e-8}
    params = [torch.nn.Parameter(torch.zeros(1))]
    for interval, ratio in ((4, 0.8), (16, 16 / 17), (None, 1.0)):
        group = lazy_regularization_optimizer(params, adam, interval).param_groups[0]
        assert group['lr'] == pytest.approx(0.0025 * ratio) and group['betas'] == pytest.approx((0.0, 0.99 ** ratio))


# ----------------------------------------------------------------------------------------------------------------
# The terms on tiny upstream networks.

ADAM_G = {'class_name': 'torch.optim.Adam', 'lr': 0.001, 'betas': [0, 0.9], 'eps': 1e-8}
ADAM_D = {'class_name': 'torch.optim.Adam', 'lr': 0.003, 'betas': [0, 0.99], 'eps': 1e-8}


def insgen_loss(G, D, **options):
    """plugins.Loss with InsGen on the tiny networks, its momentum copies moved away from what they copy (so that a
    key computed with D or the query MLP instead would show)."""
    loss = make_loss(G, D, 'plugins.Loss', augment_pipe=IdentityPipe(), training_set_size=200, G_opt_kwargs=ADAM_G,
                     D_opt_kwargs=ADAM_D, insgen=options)
    insgen = loss.methods['insgen']
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in (insgen.D_momentum, insgen.heads['real'].momentum_mlp, insgen.heads['fake'].momentum_mlp):
            for param in module.parameters():
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return loss


def moved(head, momentum=0.999):
    """A copy of a head after its key MLP's momentum step."""
    head = copy.deepcopy(head)
    for key_param, param in zip(head.momentum_mlp.parameters(), head.mlp.parameters()):
        key_param.data.copy_(key_param * momentum + param * (1 - momentum))
    return head


def test_d_main_gets_upstreams_gradient_plus_both_instance_terms():
    G, D = tiny_networks()
    batch = Batches(batch=4, batch_gpu=4).next()
    real, _real_c, z, c = batch
    upstream = phase_gradients(make_loss(G, D, 'training.loss.StyleGAN2Loss'), G, D, batch, 'Dmain')
    loss = insgen_loss(G, D, real_weight=0.7, fake_weight=0.3)
    insgen = loss.methods['insgen']
    before = copy.deepcopy(insgen.heads)
    momentum_D = copy.deepcopy(insgen.D_momentum)  # D main alone starts no minibatch: the copy stays where it is
    combined = phase_gradients(loss, G, D, batch, 'Dmain')

    D.requires_grad_(True)
    D.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the loss's draws: G(z) for D's fake term, then the perturbation and G(z + noise)
    gen_img, _ = loss.run_G(z[0], c[0], sync=False)
    perturbed, _ = loss.run_G(z[0] + torch.randn(z[0].shape) * 0.15, c[0], sync=False)
    terms, enqueued = {}, {}
    for kind, images, key_images in (('real', real[0], real[0]), ('fake', gen_img.detach(), perturbed)):
        head = moved(before[kind])
        query_features = features(D, images)
        with torch.no_grad():
            key = project(head.momentum_mlp, features(momentum_D, key_images))
            # the real queue takes the keys; the fake queue the key MLP's projection of D's query features
            enqueued[kind] = key if kind == 'real' else project(head.momentum_mlp, query_features)
        terms[kind] = infonce(project(head.mlp, query_features), key, head.queue, 0.2)
    (0.7 * terms['real'] + 0.3 * terms['fake']).float().backward()
    extras = [torch.zeros_like(p) if p.grad is None else p.grad for p in D.parameters()]  # b4 is not in the terms
    for total, base, extra in zip(combined, upstream, extras):
        torch.testing.assert_close(total, base + extra, rtol=1e-4, atol=1e-6)
    for kind in ('real', 'fake'):  # each head took a step, and its queue 4 new entries
        assert not torch.equal(insgen.heads[kind].mlp[0].weight, before[kind].mlp[0].weight)
        assert int(insgen.heads[kind].queue_ptr) == 4
        torch.testing.assert_close(insgen.heads[kind].queue[:, :4].T, enqueued[kind])
        assert torch.equal(insgen.heads[kind].queue[:, 4:], before[kind].queue[:, 4:])
    # each head's Adam has its network's settings, scaled as the training loop scales them for lazy regularization
    for kind, settings, interval in (('real', ADAM_D, 16), ('fake', ADAM_G, 4)):
        group = insgen.optimizers[kind].param_groups[0]
        ratio = interval / (interval + 1)
        assert group['lr'] == pytest.approx(settings['lr'] * ratio)
        assert group['betas'] == pytest.approx([b ** ratio for b in settings['betas']])


def test_g_main_gets_upstreams_gradient_plus_the_weighted_fake_term_and_moves_no_head():
    G, D = tiny_networks()
    batch = Batches(batch=4, batch_gpu=4).next()
    _real, _real_c, z, c = batch
    upstream = phase_gradients(make_loss(G, D, 'training.loss.StyleGAN2Loss'), G, D, batch, 'Gmain')
    loss = insgen_loss(G, D, g_weight=0.5)
    insgen = loss.methods['insgen']
    before = copy.deepcopy(insgen.heads)
    momentum_D = copy.deepcopy(insgen.D_momentum)
    combined = phase_gradients(loss, G, D, batch, 'Gmain')

    G.requires_grad_(True)
    G.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    gen_img, _ = loss.run_G(z[0], c[0], sync=False)
    head = moved(before['fake'])
    for ema, param in zip(momentum_D.parameters(), D.D.parameters()):  # the minibatch's step of D's copy
        ema.data.copy_(ema * 0.999 + param * 0.001)
    torch.testing.assert_close(insgen.D_momentum.state_dict(), momentum_D.state_dict(), rtol=0, atol=0)
    with torch.no_grad():  # the key view carries no gradient to G
        key = project(head.momentum_mlp, features(momentum_D, gen_img))
    (0.5 * infonce(project(head.mlp, features(D, gen_img)), key, head.queue, 0.2)).float().backward()
    for total, base, extra in zip(combined, upstream, [p.grad for p in G.parameters()]):
        torch.testing.assert_close(total, base + extra, rtol=1e-4, atol=1e-6)
    fake_head = insgen.heads['fake']
    assert torch.equal(fake_head.mlp[0].weight, before['fake'].mlp[0].weight)  # G's term trains no head
    assert torch.equal(fake_head.queue, before['fake'].queue) and int(fake_head.queue_ptr) == 0
    assert not torch.equal(fake_head.momentum_mlp[0].weight, before['fake'].momentum_mlp[0].weight)  # but moves
    torch.testing.assert_close(fake_head.momentum_mlp[0].weight, head.momentum_mlp[0].weight)  # its key MLP
    assert all(p.grad is None for p in fake_head.parameters())


def test_preset_equals_the_combination_and_switched_off_equals_its_absence():
    from training.augment import AugmentPipe
    pipe = AugmentPipe(xflip=1, rotate90=1, xint=1, brightness=1, contrast=1)
    pipe.p.fill_(0.5)
    facts = dict(augment_pipe=pipe, training_set_size=200)
    options = {'real_weight': 0.5, 'g_weight': 0.2, 'real_queue_size': 6}
    preset, _ = gradient_trace('plugins.insgen.Loss', minibatches=5, **facts, **options)
    combined, _ = gradient_trace('plugins.Loss', minibatches=5, **facts, insgen=options)
    assert_same_trace(preset, combined)
    off = {'real_weight': 0, 'fake_weight': 0, 'g_weight': 0}
    with_off, _ = gradient_trace('plugins.Loss', minibatches=5, **facts, atopk={}, insgen=off)
    without, _ = gradient_trace('plugins.Loss', minibatches=5, **facts, atopk={})
    assert_same_trace(with_off, without)


@pytest.mark.parametrize('options, message', [
    ({'real_weight': -1}, r'real_weight must lie in \[0, inf\), got -1'),
    ({'temperature': 0}, r'temperature must lie in \(0, inf\), got 0'),
    ({'momentum': 1.5}, r'momentum must lie in \[0, 1\], got 1.5'),
    ({'real_weight': 0, 'real_queue_size': 64},
     'real_queue_size 64 sizes the real head, which real_weight 0 turns off; leave it out, or give real_weight above 0'),
    ({'fake_queue_size': 2.5}, 'fake_queue_size must be an integer, got 2.5'),
    ({'real_queue_size': 0}, r'real_queue_size must lie in \[1, inf\), got 0'),
    ({'fake_weight': 0}, 'g_weight 0.1 needs the fake head, which fake_weight 0 leaves untrained'),
    ({'lw_real_cl': 1}, "insgen: unknown option 'lw_real_cl'; valid options: real_weight, fake_weight, g_weight"),
])
def test_bad_options_are_refused(options, message):
    from plugins import Loss
    with pytest.raises(ValueError, match=message):
        Loss.check_options(insgen=options)


def test_a_run_without_an_augment_pipe_or_with_an_empty_default_queue_is_refused():
    from plugins import Loss
    with pytest.raises(ValueError, match='InsGen makes two views of every image with the augment pipe, and this run '
                                         r'has none \(--aug noaug'):
        Loss.check_options(insgen={}, augment_pipe=False)
    with pytest.raises(ValueError, match=r'the default queue size, 5% of the 19 images \(doubled by --mirror\), is 0'):
        Loss.check_options(insgen={}, training_set_size=19, xflip=True)
    Loss.check_options(insgen={}, training_set_size=20)


# ----------------------------------------------------------------------------------------------------------------
# train.py.

def test_train_py_runs_insgen_alone_and_its_snapshot_loads(tmp_path, dataset16):
    options = {'g_weight': 0.2, 'real_queue_size': 3, 'fake_queue_size': 5}
    run_dir = train(tmp_path / 'runs', dataset16, '--kimg', '0.05', '--aug', 'ada', '--mirror', '1',
                    '--loss', 'plugins.insgen.Loss', '--loss-kwargs', json.dumps(options))
    stats = read_stats(run_dir)[-1]
    for key in ('InsGen/real_instance', 'InsGen/fake_instance', 'InsGen/fake_instance_G'):
        assert stats[key]['num'] > 0 and stats[key]['mean'] > 0, key
    log = (run_dir / 'log.txt').read_text()
    assert 'InsGen: weights real 1, fake 1, G 0.2; queues of 3 reals and 5 fakes' in log
    options = json.loads((run_dir / 'training_options.json').read_text())['loss_kwargs']
    assert options['xflip'] is True and options['D_reg_interval'] == 16 and options['G_opt_kwargs']['lr'] == 0.0025
    run_upstream('generate.py', '--network', max(run_dir.glob('network-snapshot-*.pkl')), '--seeds', '0',
                 '--outdir', tmp_path / 'images')
    assert (tmp_path / 'images' / 'seed0000.png').is_file()
