"""Tiny upstream networks and minibatches, fed to plugin losses as upstream's training loop feeds them."""

import pytest
import torch


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny networks run fastest on one thread, and far faster than on two when the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class OffsetD(torch.nn.Module):
    """Upstream's D plus a settable constant, to force the sign of every logit."""

    def __init__(self, D):
        super().__init__()
        self.D = D
        self.offset = 0.0

    def forward(self, img, c):
        return self.D(img, c) + self.offset


def tiny_networks(seed=0):
    from training.networks import Discriminator, Generator
    torch.manual_seed(seed)
    common = dict(channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=None)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=8, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=common)
    # No minibatch-stddev layer: every fake's logit depends on that fake alone.
    D = Discriminator(c_dim=0, img_resolution=8, img_channels=3, epilogue_kwargs=dict(mbstd_num_channels=0), **common)
    return G, OffsetD(D)


def make_loss(G, D, loss_class='plugins.atopk.Loss', **options):
    """A plugin loss by class name on the tiny networks, with R1 on (gamma 0.1)."""
    from dnnlib.util import get_obj_by_name
    options = {'r1_gamma': 0.1, **options}
    return get_obj_by_name(loss_class)(device=torch.device('cpu'), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                                       **options)


class Batches:
    """Deterministic minibatches split into chunks, as the training loop hands them to the loss."""

    def __init__(self, batch, batch_gpu, seed=123):
        self.batch, self.batch_gpu = batch, batch_gpu
        self.generator = torch.Generator().manual_seed(seed)
        self.done = 0  # minibatches run: the training loop's batch_idx

    def next(self):
        real = torch.rand([self.batch, 3, 8, 8], generator=self.generator) * 2 - 1
        z = torch.randn([self.batch, 16], generator=self.generator)
        c = torch.zeros([self.batch, 0])
        return real.split(self.batch_gpu), c.split(self.batch_gpu), z.split(self.batch_gpu), c.split(self.batch_gpu)


def run_minibatch(loss, batches, phases=('Gmain', 'Dmain')):
    """One minibatch as the training loop runs it: the phases' rounds, then the loss's after_minibatch."""
    real, real_c, z, c = batches.next()
    for phase in phases:
        for round_index in range(len(real)):
            loss.accumulate_gradients(phase, real[round_index], real_c[round_index], z[round_index], c[round_index],
                                      sync=round_index == len(real) - 1, gain=1)
    batches.done += 1
    if hasattr(loss, 'after_minibatch'):
        loss.after_minibatch(batches.done)


def phase_gradients(loss, G, D, batch, phase, seed=7):
    """The gradients one phase call leaves on the module it trains (G or D), with a fixed seed."""
    real, real_c, z, c = batch
    module = G if phase.startswith('G') else D
    G.requires_grad_(module is G)
    D.requires_grad_(module is D)
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss.accumulate_gradients(phase, real[0], real_c[0], z[0], c[0], sync=True, gain=1)
    return [p.grad.clone() for p in module.parameters()]


def assert_d_main_adds_logit_term(loss_class, options, term):
    """plugins.Loss's D main gradient equals upstream's plus autograd of `term(real_logits, gen_logits)` computed
    apart on D's logits of the same reals and fakes (the same seed as phase_gradients)."""
    G, D = tiny_networks()
    batch = Batches(batch=4, batch_gpu=4).next()
    upstream = phase_gradients(make_loss(G, D, 'training.loss.StyleGAN2Loss'), G, D, batch, 'Dmain')
    loss = make_loss(G, D, loss_class, **options)
    combined = phase_gradients(loss, G, D, batch, 'Dmain')
    real, real_c, z, c = batch
    torch.manual_seed(7)
    gen_img, _ = make_loss(G, D, 'training.loss.StyleGAN2Loss').run_G(z[0], c[0], sync=False)
    D.zero_grad(set_to_none=True)
    term(D(real[0], real_c[0]), D(gen_img.detach(), c[0])).backward()
    for total, base, extra in zip(combined, upstream, [p.grad for p in D.parameters()]):
        torch.testing.assert_close(total, base + extra, rtol=1e-5, atol=1e-6)
    return loss
