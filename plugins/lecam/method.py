"""LeCam's part of the plugin loss (`plugins.loss.Loss`): a term on D's logits, added to D's main loss."""

import torch
import torch.distributed
from torch_utils import training_stats

from plugins.common.contexts import DReads
from plugins.common.method import Method
from plugins.common.options import check_choice, check_range
from plugins.common.overfit import distributed_world_size
from plugins.lecam.core import FORMS, ZeroDebiasedAverage, lecam_penalty


def _sum_over_ranks(values):
    """Each entry summed over the ranks, so that every rank holds the same averages."""
    if distributed_world_size() > 1:
        values = values.clone()
        torch.distributed.all_reduce(values)
    return values


class LeCam(Method):
    """weight * R_LC added to D's main loss (Eq. 3), with a_R and a_F the moving averages of D's mean output on
    reals and fakes, each updated with the chunk's means before the term is computed, as released.

    The defaults are the released StyleGAN2 code's (google/lecam-gan `stylegan2/lecam_loss.py`,
    `scripts/run_train_ffhq.sh`). Options:
      weight  lambda, >= 0 (default 3e-7, the released FFHQ script's; its CIFAR script uses 1e-6). 0 switches LeCam
              off. The term joins D's main loss after upstream's mean over the chunk, as a scalar.
      decay   the moving averages' decay (default 0.99), zero-debiased as TensorFlow's `assign_moving_average`.
      form    'released' (default): mean(relu(D(x) - a_F)^2) + mean(relu(a_R - D(G(z)))^2), as in both released
              implementations; 'paper': Eq. 3 without the relu.
    With several processes the averages take the mean over every rank's chunk, so every rank holds the same
    averages (the released TensorFlow code kept one per GPU). A chunk without generated images (ANDA 'sampled'
    can fill every slot with negatives) leaves the fake average as it is and adds no fake term.

    Stats: 'LeCam/penalty' (R_LC before the weight), 'LeCam/ema_real' and 'LeCam/ema_fake' per D main chunk.
    """

    name = 'lecam'
    stats_prefix = 'LeCam'

    def __init__(self, weight=3e-7, decay=0.99, form='released'):
        self.check_options(weight=weight, decay=decay, form=form)
        self.weight = float(weight)
        self.form = form
        self.ema_real = ZeroDebiasedAverage(decay)
        self.ema_fake = ZeroDebiasedAverage(decay)

    @staticmethod
    def check_options(weight, decay, form):
        """Validate the LeCam options; raises ValueError naming the bad value and what is allowed."""
        check_range('weight', weight, 0)
        check_range('decay', decay, 0, 1, high_inclusive=False)
        check_choice('form', form, FORMS)

    @property
    def active(self):
        return self.weight > 0

    def d_terms_in(self, phase):
        return DReads(logits=True) if phase in ('Dmain', 'Dboth') else None

    def d_terms(self, d):
        """weight * R_LC of the chunk's real and generated logits, after the averages take the chunk's means."""
        real_logits, gen_logits = d.real_logits, d.gen_logits
        real, fake = real_logits.detach().to(torch.float64), gen_logits.detach().to(torch.float64)
        totals = _sum_over_ranks(torch.stack([real.sum(), real.new_tensor(real.numel()),
                                              fake.sum(), fake.new_tensor(fake.numel())]))
        ema_real, ema_fake = self.ema_real.update(totals[0], totals[1]), self.ema_fake.update(totals[2], totals[3])
        penalty = lecam_penalty(real_logits, gen_logits, ema_real, ema_fake, self.form)
        training_stats.report('LeCam/penalty', penalty)
        training_stats.report('LeCam/ema_real', ema_real)
        training_stats.report('LeCam/ema_fake', ema_fake)
        d.add(penalty * self.weight)

    def state_dict(self):
        return {'real': self.ema_real.state_dict(), 'fake': self.ema_fake.state_dict()}

    def load_state_dict(self, state):
        self.ema_real.load_state_dict(state['real'])
        self.ema_fake.load_state_dict(state['fake'])
