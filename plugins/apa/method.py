"""APA's part of the plugin loss (`plugins.loss.Loss`): fakes presented to D as reals."""

from typing import Union

import torch
from torch_utils import training_stats

from plugins.apa.core import pseudo_augment
from plugins.common.method import Method
from plugins.common.options import check_choice, check_range
from plugins.common.p_source import P_SOURCES, describe_pipe_p, require_pipe_p, resolve_p_source


class APA(Method):
    """D's real term (and R1) over reals of which each is replaced, with probability p, by a generated image of
    the latest G step, detached (Eq. 3; released `adaptive_pseudo_augmentation`). G's loss, D's fake term and the
    regularisers stay upstream's.

    The defaults are the released code's (EndlessSora/DeceiveD, `--aug apa`). Options:
      p   'auto' (default): the augment pipe's p when the run adapts it (train.py's `ada_target`: --aug ada, or a
          pipe with --target), as released with --with-dataaug true, where one p drives both; else the overfitting
          heuristic's p (target 0.6, speed_kimg 500, interval 4: the released APA heuristic, which is ADA's), as
          released with --with-dataaug false. 'ada' or 'heuristic' choose one; a number in [0, 1] fixes p (the
          released --aug fixed --p); 0 switches APA off.
    The pseudo reals are the images of the last G main chunk, as released (with several rounds per minibatch,
    every D round uses the last G round's images).

    Stats: 'APA/p' and 'APA/pseudo_share' (share of D's real slots that held a fake), per D real pass; with the
    heuristic's p and no augment pipe, that p is also 'Progress/augment' at each tick, as released.
    """

    name = 'apa'
    stats_prefix = 'APA'
    sets = ('d_real_inputs',)

    def __init__(self, p: Union[str, float] = 'auto', ada_target=None):  # 'auto', 'ada', 'heuristic' or a number
        self.check_options(p=p)
        self.fixed_p = None if isinstance(p, str) else float(p)
        self.p_source = 'fixed' if self.fixed_p is not None else resolve_p_source(p, ada_target)
        self.ada_target = ada_target
        self.augment_pipe = None
        self.pseudo = None  # the last G main chunk's images

    @classmethod
    def reads_p(cls, options, facts):
        if not isinstance(options['p'], str):
            return 'p is fixed'
        return 'heuristic' if resolve_p_source(options['p'], facts.get('ada_target')) == 'heuristic' else "p is ADA's p"

    @staticmethod
    def check_options(p):
        """Validate the APA options; raises ValueError naming the bad value and what is allowed."""
        if isinstance(p, str):
            check_choice('p', p, P_SOURCES)
        else:
            check_range('p', p, 0, 1)

    @property
    def active(self):
        return self.fixed_p != 0

    def setup(self, run):
        if self.p_source == 'ada':
            require_pipe_p('APA p', run.augment_pipe, self.ada_target,
                           "every real image of D's real term would be a fake, so D would never see a real one")
        self.augment_pipe = run.augment_pipe
        if self.p_source == 'fixed':
            return f'APA: p is fixed at {self.fixed_p:g}'
        return 'APA: p is ' + (describe_pipe_p(self.augment_pipe, self.ada_target) if self.p_source == 'ada' else
                               "the overfitting heuristic's p")

    def tick_stats(self, p_host):
        """The heuristic's p as 'Progress/augment' when the run has no augment pipe, as released APA logs its p."""
        return {'Progress/augment': p_host} if self.p_source == 'heuristic' and self.augment_pipe is None else {}

    def observe_g_main(self, real_img, gen_img):
        self.pseudo = gen_img

    def d_real_inputs(self, real_img, p):
        if self.pseudo is None:
            raise RuntimeError('APA needs the images of a G main step before D sees reals; none has run yet')
        p = {'fixed': self.fixed_p, 'heuristic': p, 'ada': getattr(self.augment_pipe, 'p', None)}[self.p_source]
        p = torch.as_tensor(p, device=real_img.device).detach().to(torch.float32)
        images, flags = pseudo_augment(real_img, self.pseudo, p)
        training_stats.report('APA/p', p)
        training_stats.report('APA/pseudo_share', flags.flatten().to(torch.float32))
        return images
