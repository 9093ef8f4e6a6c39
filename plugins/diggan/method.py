"""DigGAN's part of the plugin loss (`plugins.loss.Loss`): the gradient-gap regulariser added to D's loss."""

from torch_utils import training_stats

from plugins.common.contexts import DReads
from plugins.common.method import Method
from plugins.common.options import check_choice, check_range
from plugins.diggan.core import NormSmoother, gradient_gap_penalty

CADENCES = ('lazy', 'every')
GRADIENT_WRT = ('before', 'after')


class DigGAN(Method):
    """weight * mean_i (||grad_x D(x_real_i)||_2 - ||grad_x D(x_fake_i)||_2)^2 added to D's loss (DigGAN's R): the
    gradient of the raw logits with respect to D's input, second-order gradients into D, the fakes detached.

    The defaults are the released BigGAN code's (`DiffAugment-biggan-cifar/train_fns.py`); docs/methods.md ("DigGAN")
    compares the options.
    Options:
      weight     > 0 turns it on (default 1000, the StudioGAN configs' value; the authors used 10 at full data and
                 1000-10000 at 10-20% data); 0 switches DigGAN off entirely (the run is then the loss without it).
      cadence    'every' (default): in every D main step without scaling, as released (StyleGAN2 makes one D update
                 per G update). 'lazy': in the regularisation phase with R1 (every 16th minibatch with train.py),
                 scaled by the interval through the training loop's gain like upstream's lazy R1; cheaper (one
                 extra D pass on fakes every 16 minibatches, the real gradient shared with R1).
      wrt        gradient with respect to D's input 'after' (default) the augment pipe, the images D sees, as
                 released; or 'before' it, as upstream's R1 (the real gradient is then R1's own). One gradient call
                 serves R1 and DigGAN either way.
      smoothing  each norm stream mixed with the previous step's smoothed norms, per batch position:
                 g <- (1 - smoothing) g + smoothing g_prev (default 0.5, as released, where it is always on;
                 0: off). From one D step (chunk) to the next in which DigGAN runs.
    The fakes are the images D's fake term uses (under ANDA these include its negatives), detached from G.

    Stats: 'DigGAN/real_norm', 'DigGAN/fake_norm' (per image, after smoothing), 'DigGAN/gap' (real minus fake
    norm, the poster's curve) and 'DigGAN/penalty' (R before the weight).
    """

    name = 'diggan'
    stats_prefix = 'DigGAN'
    sets = ('input_grad_term',)
    per_process_state = True  # each process smooths the norms of its own images

    def __init__(self, weight=1000.0, cadence='every', wrt='after', smoothing=0.5):
        self.check_options(weight=weight, cadence=cadence, wrt=wrt, smoothing=smoothing)
        self.weight = float(weight)
        self.cadence = cadence
        self.wrt = wrt
        self.smoothing = float(smoothing)
        self.real_smoother = NormSmoother(self.smoothing)
        self.fake_smoother = NormSmoother(self.smoothing)

    @staticmethod
    def check_options(weight, cadence, wrt, smoothing):
        """Validate the DigGAN options; raises ValueError naming the bad value and what is allowed."""
        check_range('weight', weight, 0)
        check_choice('cadence', cadence, CADENCES)
        check_choice('wrt', wrt, GRADIENT_WRT)
        check_range('smoothing', smoothing, 0, 1, high_inclusive=False)

    @property
    def active(self):
        return self.weight > 0

    def d_terms_in(self, phase):
        return DReads(input_grads=self.wrt) if phase in (('Dreg', 'Dboth') if self.cadence == 'lazy' else
                                                         ('Dmain', 'Dboth')) else None

    def d_terms(self, d):
        """weight * R for one chunk, from the per-image gradient norms (differentiable wrt D)."""
        real_norms, fake_norms = d.real_norms, d.fake_norms
        if self.smoothing > 0:
            real_norms = self.real_smoother.smooth(real_norms)
            fake_norms = self.fake_smoother.smooth(fake_norms)
        penalty = gradient_gap_penalty(real_norms, fake_norms)
        training_stats.report('DigGAN/real_norm', real_norms)
        training_stats.report('DigGAN/fake_norm', fake_norms)
        training_stats.report('DigGAN/gap', real_norms - fake_norms)
        training_stats.report('DigGAN/penalty', penalty)
        d.add(penalty * self.weight)

    def state_dict(self):
        return {'real': self.real_smoother.state_dict(), 'fake': self.fake_smoother.state_dict()}

    def load_state_dict(self, state):
        self.real_smoother.load_state_dict(state['real'])
        self.fake_smoother.load_state_dict(state['fake'])
