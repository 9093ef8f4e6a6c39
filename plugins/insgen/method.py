"""InsGen's part of the plugin loss (`plugins.loss.Loss`): real and fake instance discrimination on D's features."""

import copy

import psutil
import torch
import torch.distributed
from torch_utils import misc, training_stats

from plugins.common.contexts import DReads
from plugins.common.method import Method
from plugins.common.options import check_int_range, check_range
from plugins.common.overfit import distributed_rank, distributed_world_size
from plugins.insgen.core import (PROJECTION_DIM, ContrastiveHead, default_queue_size, lazy_regularization_optimizer,
                                 momentum_update)


UPSTREAM_ADAM = {'class_name': 'torch.optim.Adam', 'lr': 0.0025, 'betas': [0, 0.99], 'eps': 1e-8}  # without train.py's


def _unwrapped(module):
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module


def epilogue_block(D):
    """D's 4x4 epilogue block `b4` (upstream's name), also inside a wrapper such as DDP; None if it has none."""
    return next((module for name, module in D.named_modules() if name.rpartition('.')[2] == 'b4'), None)


def d_features(D, images, c):
    """D's features where the released code reads them (`return_feats`): the input of its 4x4 epilogue `b4`.
    `images` is what the augment pipe returned (a (x_t, t) pair for a timestep-conditioned D)."""
    captured = []
    handle = epilogue_block(D).register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    try:
        D(images, c)
    finally:
        handle.remove()
    return captured[0]


def _gather_over_ranks(keys):
    """Every rank's keys, concatenated in rank order (released `concat_all_gather`)."""
    world_size = distributed_world_size()
    if world_size == 1:
        return keys
    gathered = [torch.empty_like(keys) for _ in range(world_size)]
    torch.distributed.all_gather(gathered, keys.contiguous())
    return torch.cat(gathered)


def _average_grads_over_ranks(module):
    """What DDP does for the released heads: each gradient averaged over the ranks before the step."""
    world_size = distributed_world_size()
    if world_size == 1:
        return
    for param in module.parameters():
        if param.grad is not None:
            torch.distributed.all_reduce(param.grad)
            param.grad.div_(world_size)


class InsGen(Method):
    """Instance discrimination as an auxiliary task of D, as released (genforce/insgen `training/contrastive_loss.py`,
    `contrastive_head.py`, `training_loop.py`):
      real   each real image against the queue of past reals: InfoNCE between D's features of one augmented view
             and the momentum D's features of another, through the real head; added to D's main loss.
      fake   each fake against the queue of past fakes, its positive a fake of the same z perturbed by N(0, 0.15^2)
             (the fake head, whose queue takes the momentum head's projection of D's features); added to D's main loss.
      G      the fake term of G main's fakes (two views of each, no queue update), times g_weight, added to G's
             loss: G is pushed to make distinguishable instances.
    The momentum D is a copy of D moved towards it once per minibatch, before the phases; each head has a
    momentum copy of its MLP moved on every call, and its own Adam with G's (fake head) or D's (real head)
    settings scaled for lazy regularization, stepped after each D main backward. Views come from the augment pipe.

    Options (released defaults, `train.py` and `training/training_loop.py`):
      real_weight, fake_weight, g_weight  the three terms' weights (1, 1, 0.1); g_weight 0 is the released
                   --no_cl_on_g. All 0 switches InsGen off.
      temperature  of the InfoNCE logits (0.2); momentum of the heads' key MLPs and of the momentum D (0.999).
      real_queue_size, fake_queue_size  negatives kept (default: 5% of the dataset, doubled with --mirror).
      noise_std    of the perturbation of z for the fake positives (0.15).
    With several processes every rank's keys enter every rank's queue in rank order, the heads' gradients are
    averaged over the ranks, and the heads start from `random_seed`, so every rank holds the same heads and queues.
    Stats, each also under the released name in brackets: 'InsGen/real_instance' [Loss/D_cl], 'InsGen/fake_instance'
    [Loss/G_cl], 'InsGen/fake_instance_G' [Loss/G_cl_on_g].
    """

    name = 'insgen'
    stats_prefix = 'InsGen'

    def __init__(self, real_weight=1.0, fake_weight=1.0, g_weight=0.1, temperature=0.2, momentum=0.999,
                 real_queue_size=None, fake_queue_size=None, noise_std=0.15, random_seed=0, training_set_size=None,
                 xflip=False, G_opt_kwargs=None, D_opt_kwargs=None, G_reg_interval=4, D_reg_interval=16):
        self.check_options(real_weight=real_weight, fake_weight=fake_weight, g_weight=g_weight,
                           temperature=temperature, momentum=momentum, real_queue_size=real_queue_size,
                           fake_queue_size=fake_queue_size, noise_std=noise_std)
        self.weights = {'real': float(real_weight), 'fake': float(fake_weight), 'G': float(g_weight)}
        self.temperature, self.momentum, self.noise_std = float(temperature), float(momentum), float(noise_std)
        default = default_queue_size(training_set_size, xflip) if training_set_size is not None else None
        self.queue_sizes = {'real': default if real_queue_size is None else real_queue_size,
                            'fake': default if fake_queue_size is None else fake_queue_size}
        if 0 in self.queue_sizes.values():  # no negatives: the terms would be 0, InsGen silently off
            raise ValueError(f'the default queue size, 5% of the {training_set_size} images'
                             f'{" (doubled by --mirror)" if xflip else ""}, is 0; give real_queue_size and '
                             f'fake_queue_size (at least 1)')
        self.optimizer_settings = {'real': (D_opt_kwargs or UPSTREAM_ADAM, D_reg_interval),
                                   'fake': (G_opt_kwargs or UPSTREAM_ADAM, G_reg_interval)}
        self.random_seed = random_seed
        self.augment_pipe = self.D = self.D_momentum = None
        self.heads, self.optimizers = {}, {}

    @staticmethod
    def check_options(real_weight, fake_weight, g_weight, temperature, momentum, real_queue_size, fake_queue_size,
                      noise_std):
        """Validate the InsGen options; raises ValueError naming the bad value and what is allowed."""
        for name, value in (('real_weight', real_weight), ('fake_weight', fake_weight), ('g_weight', g_weight),
                            ('noise_std', noise_std)):
            check_range(name, value, 0)
        check_range('temperature', temperature, 0, low_inclusive=False)
        check_range('momentum', momentum, 0, 1)
        memory = psutil.virtual_memory().total
        for name, value in (('real_queue_size', real_queue_size), ('fake_queue_size', fake_queue_size)):
            if value is not None:
                check_int_range(name, value, 1)
                if value * PROJECTION_DIM * 4 > memory:  # 128 float32 per key, on the training device
                    raise ValueError(f'{name}={value} would hold {value * PROJECTION_DIM * 4 / 2**30:.1f} GiB of keys '
                                     f'({PROJECTION_DIM} float32 each); this machine has {memory / 2**30:.1f} GiB')
        if fake_weight == 0 and g_weight > 0:
            raise ValueError(f'g_weight {g_weight} needs the fake head, which fake_weight 0 leaves untrained; set '
                             f'g_weight to 0 too, or fake_weight above 0')
        for head, weight, size in (('real', real_weight, real_queue_size), ('fake', fake_weight, fake_queue_size)):
            if size is not None and weight == 0:  # the head is off: its queue would do nothing
                raise ValueError(f'{head}_queue_size {size} sizes the {head} head, which {head}_weight 0 turns off; '
                                 f'leave it out, or give {head}_weight above 0')

    @property
    def active(self):
        return any(weight > 0 for weight in self.weights.values())

    def setup(self, run):
        if run.augment_pipe is None:
            raise ValueError('InsGen makes two views of every image with the augment pipe, and this run has none '
                             '(--aug noaug, or p 0 without --target): use --aug ada, as released, or another pipe')
        if None in self.queue_sizes.values():
            raise ValueError('InsGen needs the dataset size for its default queue sizes; give real_queue_size and '
                             'fake_queue_size')
        self.augment_pipe = run.augment_pipe
        if run.D is not None:
            self._build_heads(run.D)
        return (f'InsGen: weights real {self.weights["real"]:g}, fake {self.weights["fake"]:g}, G '
                f'{self.weights["G"]:g}; queues of {self.queue_sizes["real"]} reals and {self.queue_sizes["fake"]} '
                f'fakes; temperature {self.temperature:g}, momentum {self.momentum:g}')

    def _build_heads(self, D):
        """The momentum D, the heads and their optimizers, from D."""
        inner = _unwrapped(D)
        if epilogue_block(inner) is None:
            raise ValueError(f'InsGen reads D\'s features at the input of its 4x4 block b4, which '
                             f'{type(inner).__name__} does not have')
        self.D = D
        self.D_momentum = copy.deepcopy(inner).eval().requires_grad_(False)
        device = next(inner.parameters()).device
        generator = torch.Generator().manual_seed(self.random_seed)  # the same heads and queues on every rank
        channels = epilogue_block(inner).in_channels  # the released heads' `inplanes` (512 in its configs)
        for kind in ('real', 'fake'):
            head = ContrastiveHead(channels, self.queue_sizes[kind], self.temperature, self.momentum,
                                   generator=generator).to(device)
            self.heads[kind] = head
            self.optimizers[kind] = lazy_regularization_optimizer(head.parameters(), *self.optimizer_settings[kind])

    def begin_minibatch(self, tracker, rank, world_size, p_host):
        momentum_update(self.D_momentum, _unwrapped(self.D), self.momentum)

    def _instance_loss(self, kind, images, c, key_images=None, enqueue=None):
        """The head's InfoNCE loss between D's features of one augmented view of `images` and the momentum D's of
        another view (of `key_images` when given) (released `run_cl`)."""
        query_view = self.augment_pipe(images)
        key_view = self.augment_pipe(images if key_images is None else key_images)
        with misc.ddp_sync(self.D, False):
            query_features = d_features(self.D, query_view, c)
        with torch.no_grad():
            key_features = d_features(self.D_momentum, key_view, c)
        return self.heads[kind](query_features, key_features, enqueue=enqueue, gather=_gather_over_ranks)

    def g_main(self, g):
        """g_weight times the fake head's loss of G's fakes, added to each image's loss."""
        if self.weights['G'] == 0:
            return
        head = self.heads['fake'].requires_grad_(False)  # G's term moves neither the head nor its queue
        try:
            loss = self._instance_loss('fake', g.gen_img, g.gen_c)
        finally:
            head.requires_grad_(True)
        training_stats.report('Loss/G_cl_on_g', loss)
        training_stats.report('InsGen/fake_instance_G', loss)
        g.add(self.weights['G'] * loss)

    def d_terms_in(self, phase):
        return DReads() if phase in ('Dmain', 'Dboth') else None

    def d_terms(self, d):
        """The real and fake heads' losses, added to each image's loss of D's real term, as released; the heads
        step after D main's backward."""
        if self.weights['real'] > 0:
            self.optimizers['real'].zero_grad(set_to_none=True)
            loss = self._instance_loss('real', d.real_img, d.real_c, enqueue='keys')
            training_stats.report('Loss/D_cl', loss)  # the released name
            training_stats.report('InsGen/real_instance', loss)
            d.add_to_real_term(self.weights['real'] * loss)
        if self.weights['fake'] > 0:
            self.optimizers['fake'].zero_grad(set_to_none=True)
            with torch.no_grad():
                gen_z = d.gen_z
                perturbed, _ws = d.run_G(gen_z + torch.randn(gen_z.shape, device=gen_z.device) * self.noise_std,
                                         d.gen_c, sync=False)
            loss = self._instance_loss('fake', d.gen_img, d.gen_c, key_images=perturbed, enqueue='queries')
            training_stats.report('Loss/G_cl', loss)
            training_stats.report('InsGen/fake_instance', loss)
            d.add_to_real_term(self.weights['fake'] * loss)
        d.after_backward(self._step_heads)

    def _step_heads(self):
        for kind in ('real', 'fake'):
            if self.weights[kind] > 0:
                _average_grads_over_ranks(self.heads[kind])
                self.optimizers[kind].step()

    def state_dict(self):
        return {'D_momentum': {k: v.detach().clone() for k, v in self.D_momentum.state_dict().items()},
                'heads': {kind: {k: v.detach().clone() for k, v in head.state_dict().items()}
                          for kind, head in self.heads.items()},
                'optimizers': {kind: copy.deepcopy(opt.state_dict()) for kind, opt in self.optimizers.items()}}

    def load_state_dict(self, state):
        self.D_momentum.load_state_dict(state['D_momentum'])
        for kind, head in self.heads.items():
            saved = dict(state['heads'][kind])
            if saved['queue'].shape != head.queue.shape:  # resumed with another queue size: that queue starts afresh
                if distributed_rank() == 0:
                    print(f'InsGen: the snapshot\'s {kind} queue holds {saved["queue"].shape[1]} keys, this run\'s '
                          f'{head.queue.shape[1]}; it starts afresh (the heads and the momentum D are restored)')
                saved['queue'], saved['queue_ptr'] = head.queue, head.queue_ptr
            head.load_state_dict(saved)
            self.optimizers[kind].load_state_dict(state['optimizers'][kind])
