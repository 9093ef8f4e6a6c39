"""Diffusion-GAN's forward diffusion as an upstream augment pipe: `--aug plugins.diffusion.AugmentPipe --target 0.6
--D-class plugins.diffusion.Discriminator` (released `training/diffusion.py`, class `Diffusion`)."""

import numpy as np
import torch
from torch_utils import persistence, training_stats

from plugins.common.options import check_choice, check_int_range, check_range
from plugins.diffusion.core import (SCHEDULES, TABLE_SIZE, TIMESTEP_DISTRIBUTIONS, beta_schedule, check_lengths,
                                    diffusion_length, q_sample, signal_and_noise_scales, timestep_table)

INNER_AUGMENTATIONS = ('none', 'ada', 'diffaug')
BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1,
           hue=1, saturation=1)
DRAWS = ('released', 'seeded')
DEFAULT_ADA_MAXP = 0.25  # the released --ada_maxp


@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    """Returns (x_t, t) for images x_0: each image diffused for t steps, t drawn uniformly from a table of 64
    timesteps (32 drawn from 1..T, 32 zeros), as released. T = t_min + round(p (t_max - t_min)) follows ADA's p:
    train.py adjusts p with --target (every 4 minibatches, at `ada_kimg` = 100 kimg per unit unless --ada-kimg), and
    after each adjustment `ada_adjusted` clamps p to [0, 1] and draws a new table, as the released `update_T`. p is
    float64, as the released Python float.

    Options (released defaults): beta_schedule 'linear' (beta_start 1e-4, beta_end 2e-2), t_min 10, t_max 1000,
    noise_std 0.05, ts_dist 'priority' (P(t) proportional to t - 1) or 'uniform', inner augmentation 'none', 'ada'
    (upstream's bgc pipe at p = min(p, ada_maxp), ada_maxp 0.25, 0: no cap, as released) or 'diffaug'
    (DiffAugment), applied before the diffusion; `draws`:
      'released' (default): the table and each image's t come from NumPy's global generator, as released: the first
                 table when the pipe is built, a new one at each adjustment, t per image by np.random.choice. Each
                 process thus holds its own table (its generator is seeded by --seed and its rank).
      'seeded':  the table is a function of (`seed`, number of adjustments), `seed` by default the run's --seed
                 (train.py passes it as random_seed), so every process holds the same one; t per image from
                 torch's generator.
    The table is a buffer, kept per process (patch 0017) with the released draws, so a resumed run continues with
    it. With a fixed --p, T follows p from the first batch
    (the released code leaves T at t_min until an adjustment, which a fixed p never makes).

    Stats: 'Diffusion/T' when T is set (first batch, adjustments) and, at each tick, 'Progress/augment_T' as released
    (p is upstream's 'Progress/augment').
    """

    passes_timesteps = True  # D gets (x_t, t): train.py requires a --D-class that takes_timesteps
    stats_prefix = 'Diffusion'  # of the quantities it reports (plugins.methods.PIPES)
    ada_kimg = 100  # the released --ada_kimg default, used by train.py unless --ada-kimg is given

    def __init__(self, beta_schedule='linear', beta_start=1e-4, beta_end=2e-2, t_min=10, t_max=1000, noise_std=0.05,
                 ts_dist='priority', inner='none', ada_maxp=None, draws='released', seed=None, random_seed=0):
        super().__init__()
        check_choice('beta_schedule', beta_schedule, SCHEDULES)
        check_range('beta_start', beta_start, 0, 1, low_inclusive=False)
        check_range('beta_end', beta_end, 0, 1, low_inclusive=False)
        check_lengths(t_min, t_max)
        check_range('noise_std', noise_std, 0, low_inclusive=False)
        check_choice('ts_dist', ts_dist, TIMESTEP_DISTRIBUTIONS)
        check_choice('inner', inner, INNER_AUGMENTATIONS)
        if ada_maxp is not None:
            check_range('ada_maxp', ada_maxp, 0, 1)
            if inner == 'none':
                raise ValueError(f"ada_maxp={ada_maxp!r} caps the inner augmentation's p, and inner is 'none'; give "
                                 f"inner 'ada' or 'diffaug', or leave ada_maxp out")
        check_choice('draws', draws, DRAWS)
        if seed is not None:
            check_int_range('seed', seed, 0)
            if draws != 'seeded':
                raise ValueError(f"seed={seed!r} applies only to draws 'seeded' (draws {draws!r} use NumPy's global "
                                 f"generator, as released)")
        self.schedule = dict(name=beta_schedule, beta_start=float(beta_start), beta_end=float(beta_end))
        self.t_min, self.t_max, self.noise_std, self.ts_dist = t_min, t_max, float(noise_std), ts_dist
        self.ada_maxp, self.draws = float(DEFAULT_ADA_MAXP if ada_maxp is None else ada_maxp), draws
        self.per_process_buffers = ('table',) if draws == 'released' else ()  # patch 0017 keeps it per process
        self.seed = int(random_seed if seed is None else seed)
        self.register_buffer('p', torch.zeros([], dtype=torch.float64))
        self.register_buffer('adjustments', torch.zeros([], dtype=torch.int64))
        self.register_buffer('table', torch.zeros([TABLE_SIZE], dtype=torch.int64))
        self.register_buffer('table_steps', torch.zeros([], dtype=torch.int64))  # the T the table was drawn for
        self.inner, self.inner_kind = None, inner
        if inner == 'ada':
            from training.augment import AugmentPipe as UpstreamPipe
            self.inner = UpstreamPipe(**BGC)
        elif inner == 'diffaug':
            from plugins.diffaug.pipe import AugmentPipe as DiffAugmentPipe
            self.inner = DiffAugmentPipe()
        self._draw_table(t_min)  # as released: the first table, for p = 0, when the pipe is built
        self._forget()

    def _draw_table(self, steps):
        rng = np.random if self.draws == 'released' else np.random.default_rng([self.seed, int(self.adjustments)])
        self.table.copy_(timestep_table(steps, self.ts_dist, rng))
        self.table_steps.fill_(steps)

    def _forget(self):
        """Drop the host copies derived from the buffers; they are rebuilt when next needed."""
        self.steps = self.table_host = self.signal = self.noise_scale = None

    def _prepare(self):
        """T from p (one read of p), its table (drawn anew if p was set since it was drawn: a fixed --p), the
        diffusion scales, and the inner augmentation's p."""
        p = float(self.p)
        self.steps = diffusion_length(p, self.t_min, self.t_max)
        if self.steps != int(self.table_steps):
            self._draw_table(self.steps)
        betas = beta_schedule(self.schedule['name'], self.steps, self.schedule['beta_start'], self.schedule['beta_end'])
        signal, noise = signal_and_noise_scales(betas)
        self.signal, self.noise_scale = signal.to(self.p.device), noise.to(self.p.device)
        self.table_host = self.table.cpu().numpy()
        if self.inner_kind == 'ada':
            self.inner.p.copy_(torch.as_tensor(min(p, self.ada_maxp) if self.ada_maxp else p))
        training_stats.report('Diffusion/T', self.steps)

    @torch.no_grad()
    def ada_adjusted(self):
        """After ADA moved p: clamp it to [0, 1] and draw the next table for the new T (the released `update_T`)."""
        self.p.clamp_(0, 1)
        self.adjustments += 1
        self._draw_table(diffusion_length(float(self.p), self.t_min, self.t_max))
        self._prepare()

    def tick_stats(self):
        """T as the released training loop reports it at each tick."""
        steps = self.steps if self.steps is not None else diffusion_length(float(self.p), self.t_min, self.t_max)
        return {'Progress/augment_T': float(steps)}

    def _apply(self, fn, *args, **kwargs):  # .to(), .cpu(), ...: the derived tensors are rebuilt on the new device
        self._forget()
        return super()._apply(fn, *args, **kwargs)

    def forward(self, images):
        if self.steps is None:
            self._prepare()
        if self.inner is not None:
            images = self.inner(images)
        if self.draws == 'released':
            t = torch.from_numpy(np.random.choice(self.table_host, size=images.shape[0])).to(images.device)
        else:
            t = self.table[torch.randint(TABLE_SIZE, [images.shape[0]], device=images.device)]
        return q_sample(images, t, self.signal, self.noise_scale, self.noise_std), t.view(-1, 1)
