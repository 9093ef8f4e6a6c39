"""plugins.diggan.Loss on tiny upstream networks: the penalty against per-image gradients computed one at a time,
before and after the augment pipe, D receiving its gradient and G none, R1's gradient shared, weight 0 as upstream,
and option errors. train.py runs with each cadence are in test_plugin_loss.py."""

import pytest
import torch

from tests.tiny import Batches, make_loss, one_thread, phase_gradients, tiny_networks  # noqa: F401 (autouse fixture)


class RecordingPipe(torch.nn.Module):
    """A deterministic, non-linear augment pipe with upstream's p buffer that keeps a copy of every input."""

    def __init__(self):
        super().__init__()
        self.register_buffer('p', torch.ones([]))
        self.inputs = []

    def forward(self, images):
        self.inputs.append(images.detach().clone())
        return torch.tanh(1.5 * images).flip(3)


def per_image_norms(D, pipe, images, c, wrt):
    """||d D(T(x_i)) / d x_i|| ('before') or / d T(x_i) ('after'), one image at a time, differentiable wrt D."""
    norms = []
    for image in images.split(1):
        before = image.detach().requires_grad_(True)
        after = pipe.forward(before)
        logit = D(after, c[:1])
        grad, = torch.autograd.grad(logit.sum(), before if wrt == 'before' else after, create_graph=True)
        norms.append(grad.flatten().norm())
    return torch.stack(norms)


def collect():
    from torch_utils import training_stats
    collector = training_stats.Collector(regex='DigGAN/.*', keep_previous=False)
    collector.update()
    return collector


@pytest.mark.parametrize('cadence, phase', [('lazy', 'Dreg'), ('every', 'Dmain')])
@pytest.mark.parametrize('wrt', ['before', 'after'])
def test_penalty_and_its_D_gradient_match_per_image_gradients(wrt, cadence, phase):
    G, D = tiny_networks()
    pipe = RecordingPipe()
    loss = make_loss(G, D, 'plugins.diggan.Loss', weight=10.0, wrt=wrt, cadence=cadence, r1_gamma=0, pl_weight=0,
                     augment_pipe=pipe)
    real, real_c, z, c = Batches(batch=4, batch_gpu=4).next()
    G.requires_grad_(True)  # nothing may reach G even so
    D.requires_grad_(True)
    collector = collect()
    loss.accumulate_gradients(phase, real[0], real_c[0], z[0], c[0], sync=True, gain=3)
    collector.update()
    ours = [p.grad.clone() for p in D.parameters()]
    assert all(p.grad is None for p in G.parameters())
    fakes, reals = pipe.inputs[0], pipe.inputs[-1]
    assert torch.equal(reals, real[0])

    D.zero_grad(set_to_none=True)
    pipe.inputs.clear()
    real_norms = per_image_norms(D, pipe, reals, c[0], wrt)
    fake_norms = per_image_norms(D, pipe, fakes, c[0], wrt)
    penalty = (real_norms - fake_norms).square().mean()
    assert collector.mean('DigGAN/penalty') == pytest.approx(penalty.item(), rel=1e-4)
    assert collector.mean('DigGAN/real_norm') == pytest.approx(real_norms.mean().item(), rel=1e-4)
    assert collector.mean('DigGAN/gap') == pytest.approx((real_norms - fake_norms).mean().item(), rel=1e-4, abs=1e-7)
    reference = penalty * 10.0 * 3
    if phase == 'Dmain':  # the main phase also holds upstream's D loss
        sp = torch.nn.functional.softplus
        reference = reference + 3 * (sp(D(pipe(fakes), c[0])).mean() + sp(-D(pipe(reals), c[0])).mean())
    reference.backward()
    for got, want in zip(ours, (p.grad for p in D.parameters())):
        torch.testing.assert_close(got, torch.zeros_like(got) if want is None else want, rtol=1e-4, atol=1e-7)
    assert any(float(g.abs().sum()) > 0 for g in ours)


def test_lazy_R1_and_DigGAN_share_the_real_gradient(monkeypatch):
    G, D = tiny_networks()
    loss = make_loss(G, D, 'plugins.diggan.Loss', weight=10.0, cadence='lazy', wrt='before')
    real, real_c, z, c = Batches(batch=4, batch_gpu=4).next()
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, 'grad', lambda *args, **kwargs: calls.append(1) or grad(*args, **kwargs))
    collector = collect()
    loss.accumulate_gradients('Dreg', real[0], real_c[0], z[0], c[0], sync=True, gain=1)
    collector.update()
    assert collector.num('DigGAN/penalty') == 1
    assert len(calls) == 2  # one for the fakes, one for the reals that serves R1 and DigGAN


def test_defaults_are_the_released_regulariser_on_augmented_images_every_D_step():
    """Released BigGAN code: at each D update, per-image norms of dD/d(augmented input), smoothed 0.5/0.5 with the
    previous update's smoothed norms (detached), penalty weight * mean (fake - real)^2, no interval scaling."""
    G, D = tiny_networks()
    pipe = RecordingPipe()
    loss = make_loss(G, D, 'plugins.diggan.Loss', r1_gamma=0, pl_weight=0, augment_pipe=pipe)
    batches = Batches(batch=4, batch_gpu=4)
    previous = None
    for step in range(3):
        real, real_c, z, c = batches.next()
        D.zero_grad(set_to_none=True)
        pipe.inputs.clear()
        collector = collect()
        loss.accumulate_gradients('Dmain', real[0], real_c[0], z[0], c[0], sync=True, gain=1)
        collector.update()
        ours = [p.grad.clone() for p in D.parameters()]
        fakes, reals = pipe.inputs[0], pipe.inputs[-1]

        D.zero_grad(set_to_none=True)
        norms = {'real': per_image_norms(D, pipe, reals, c[0], 'after'),
                 'fake': per_image_norms(D, pipe, fakes, c[0], 'after')}
        if previous is not None:
            norms = {key: 0.5 * value + 0.5 * previous[key] for key, value in norms.items()}
        previous = {key: value.detach() for key, value in norms.items()}
        penalty = (norms['fake'] - norms['real']).square().mean()
        assert collector.mean('DigGAN/penalty') == pytest.approx(penalty.item(), rel=1e-4)
        sp = torch.nn.functional.softplus
        reference = 1000 * penalty + sp(D(pipe(fakes), c[0])).mean() + sp(-D(pipe(reals), c[0])).mean()
        reference.backward()
        for got, want in zip(ours, (p.grad for p in D.parameters())):
            torch.testing.assert_close(got, torch.zeros_like(got) if want is None else want, rtol=1e-4, atol=1e-6)
    collector = collect()
    loss.accumulate_gradients('Dreg', real[0], real_c[0], z[0], c[0], sync=True, gain=16)
    collector.update()
    assert collector.num('DigGAN/penalty') == 0                     # not in the regularisation phase


def test_weight_zero_is_the_upstream_loss_exactly():
    from training.loss import StyleGAN2Loss
    G, D = tiny_networks()
    diggan = make_loss(G, D, 'plugins.diggan.Loss', weight=0.0, cadence='every')
    upstream = StyleGAN2Loss(device=torch.device('cpu'), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D, r1_gamma=0.1)
    batch = Batches(batch=4, batch_gpu=4).next()
    for phase in ['Gmain', 'Greg', 'Dmain', 'Dreg', 'Dboth']:
        for ours, theirs in zip(phase_gradients(diggan, G, D, batch, phase),
                                phase_gradients(upstream, G, D, batch, phase)):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize('options, message', [
    ({'weight': -1}, r'weight must lie in \[0, inf\), got -1'),
    ({'weight': 'high'}, "weight must be a finite real number, got 'high'"),
    ({'weight': float('inf')}, 'weight must be a finite real number, got inf'),
    ({'cadence': 'sometimes'}, "cadence must be one of 'lazy', 'every'; got 'sometimes'"),
    ({'wrt': 'during'}, "wrt must be one of 'before', 'after'; got 'during'"),
    ({'smoothing': 1.0}, r'smoothing must lie in \[0, 1\), got 1.0'),
    ({'target': 0.6}, "diggan: unknown option 'target'; valid options: weight, cadence, wrt, smoothing"),
])
def test_bad_options_are_refused(options, message):
    from plugins.diggan import Loss
    with pytest.raises(ValueError, match=message):
        Loss.check_options(**options)
