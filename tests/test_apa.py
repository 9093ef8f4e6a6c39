"""APA (plugins.apa): the pseudo reals against an independent computation, the fakes detached from G, p from each
source, and option errors. train.py runs with the other methods are in test_plugin_loss.py; the released loss
(EndlessSora/DeceiveD) gave the same gradients bit for bit in a scratch comparison (docs/methods.md, "APA")."""

import pytest
import torch

from plugins.common.contexts import Run
from tests.tiny import Batches, make_loss, one_thread, phase_gradients, tiny_networks  # noqa: F401 (autouse fixture)


def test_pseudo_augment_replaces_each_real_with_probability_p():
    from plugins.apa.core import pseudo_augment
    generator = torch.Generator().manual_seed(0)
    real = torch.rand([4000, 1, 2, 2], generator=generator)
    fake = -torch.rand([4000, 1, 2, 2], generator=generator)  # values no real image has
    torch.manual_seed(3)
    images, flags = pseudo_augment(real, fake, torch.tensor(0.3))
    torch.manual_seed(3)
    assert torch.equal(flags, torch.rand([4000, 1, 1, 1]) < 0.3)  # one draw per image, as released
    assert torch.equal(images[flags.flatten()], fake[flags.flatten()])
    assert torch.equal(images[~flags.flatten()], real[~flags.flatten()])
    assert abs(flags.float().mean().item() - 0.3) < 4 * (0.3 * 0.7 / 4000) ** 0.5
    for p, share in [(0.0, 0.0), (1.0, 1.0)]:
        assert pseudo_augment(real, fake, torch.tensor(p))[1].float().mean().item() == share
    with pytest.raises(ValueError, match=r'got reals of shape \[4000, 1, 2, 2\] and fakes of shape \[2, 1, 2, 2\]'):
        pseudo_augment(real, fake[:2], 0.5)


def test_d_sees_the_last_g_steps_fakes_as_reals_and_g_gets_nothing_from_them():
    G, D = tiny_networks()
    batch = Batches(batch=4, batch_gpu=4).next()
    loss = make_loss(G, D, 'plugins.Loss', apa={'p': 1.0})  # every real replaced
    phase_gradients(loss, G, D, batch, 'Gmain')
    pseudo = loss.methods['apa'].pseudo
    upstream = make_loss(G, D, 'training.loss.StyleGAN2Loss')
    real, real_c, z, c = batch
    torch.manual_seed(7)  # phase_gradients' seed: the G step's images, computed apart
    expected_pseudo, _ = upstream.run_G(z[0], c[0], sync=False)
    assert torch.equal(pseudo, expected_pseudo.detach()) and not pseudo.requires_grad

    for phase in ('Dmain', 'Dreg'):  # both D passes on reals see the fakes (R1 too, as released)
        with_apa = phase_gradients(loss, G, D, batch, phase)
        on_fakes = phase_gradients(upstream, G, D, ((pseudo,), real_c, z, c), phase)
        for a, b in zip(with_apa, on_fakes):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    g_grads = []  # G's gradient from a D step with G trainable: upstream's fake term alone, the pseudo reals add none
    for each in (loss, upstream):
        G.requires_grad_(True)
        G.zero_grad(set_to_none=True)
        torch.manual_seed(7)
        each.accumulate_gradients('Dmain', real[0], real_c[0], z[0], c[0], sync=True, gain=1)
        g_grads.append([p.grad.clone() for p in G.parameters() if p.grad is not None])
    assert len(g_grads[0]) > 0 and all(torch.equal(a, b) for a, b in zip(*g_grads))


def test_p_follows_its_source():
    from torch_utils import training_stats
    G, D = tiny_networks()
    batch = Batches(batch=4, batch_gpu=4).next()
    collector = training_stats.Collector(regex='APA/.*', keep_previous=False)
    collector.update()
    heuristic = make_loss(G, D, 'plugins.Loss', apa={'p': 'heuristic'})
    heuristic.heuristics['apa'].p.fill_(0.25)
    phase_gradients(heuristic, G, D, batch, 'Gmain')
    phase_gradients(heuristic, G, D, batch, 'Dmain')
    collector.update()
    assert collector.mean('APA/p') == 0.25

    class Pipe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer('p', torch.tensor(0.75))

        def forward(self, images):
            return images

    from_pipe = make_loss(G, D, 'plugins.Loss', augment_pipe=Pipe(), ada_target=0.6, apa={})  # auto: ADA's p
    line = from_pipe.methods['apa'].setup(Run(augment_pipe=from_pipe.augment_pipe))
    assert 'apa' not in from_pipe.heuristics and line == "APA: p is the augment pipe's p (ADA, target 0.6)"
    phase_gradients(from_pipe, G, D, batch, 'Gmain')
    phase_gradients(from_pipe, G, D, batch, 'Dmain')
    collector.update()
    assert collector.mean('APA/p') == 0.75


@pytest.mark.parametrize('options, message', [
    ({'apa': {'p': 'sometimes'}}, "p must be one of 'auto', 'ada', 'heuristic'; got 'sometimes'"),
    ({'apa': {'p': 1.5}}, r'p must lie in \[0, 1\], got 1.5'),
    ({'apa': {'p': 0.5, 'target': 0.7}}, 'apa: target set the overfitting heuristic, which apa does not use'),
    ({'apa': {'p': 'ada'}, 'augment_pipe': False}, "APA p='ada' follows the augment pipe's p, but this run has no"),
    ({'apa': {'p': 'ada'}, 'augment_pipe': True, 'augment_p': 1.0},
     r"APA p='ada' follows the augment pipe's p, which this run fixes at 1 \(no --target\): every real image of D's "
     r"real term would be a fake"),
])
def test_bad_options_are_refused(options, message):
    from plugins import Loss
    with pytest.raises(ValueError, match=message):
        Loss.check_options(**options)
