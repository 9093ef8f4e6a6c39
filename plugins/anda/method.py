"""ANDA's part of the plugin loss (`plugins.loss.Loss`): D's fake term over generated images and negatives."""

import torch
from torch_utils import training_stats

from plugins.anda.negatives import NEGATIVE_TRANSFORMS, PERMUTATIONS, make_negatives
from plugins.common.method import Method
from plugins.common.options import check_choice, check_int_range, check_range
from plugins.common.p_source import P_SOURCES, describe_pipe_p, require_pipe_p, resolve_p_source

ESTIMATORS = ('released', 'sampled', 'weighted')


class ANDA(Method):
    """D's fake term of the ANDA supplementary's Eq. S4: weight w = lam * (1 - alpha) on negatives T(NDA(x_real))
    and 1 - w on T(G(z)); the real term, G's loss and every regulariser stay upstream's.

    The defaults are the released code's (`Training_ANDA/training/loss.py`), which produced the paper's tables.
    Options:
      lam          lambda of Eq. S4, 0 <= lam < 1 (default 0.2, the released value). lam = 0 switches ANDA off.
      estimator    'released' (default): the authors' released code: per-image flags f ~ Bernoulli(alpha); when
                   none fires in the chunk, D's fake input is the pixel blend lam * NDA(x) + (1 - lam) * G(z)
                   (0.2 / 0.8 at the default lam), otherwise plain G(z). As released, NDA(x) is drawn in G main
                   from that round's reals, and every D main round uses the last G main round's.
                   'sampled': Eq. S4 as written: each fake slot of D's batch holds a negative with probability w,
                   else the generated image, in one D pass, so D's cost is unchanged; its expectation is Eq. S4.
                   'weighted': D sees the full generated batch and a full batch of negatives and the two terms are
                   weighted by 1 - w and w exactly (lower variance, one more D pass).
      alpha        where alpha comes from: 'auto' (default): ADA's augment_pipe.p when the run adapts p (train.py's
                   `ada_target` is set: --aug ada, or a pipe with --target), as released, else the shared
                   overfitting heuristic's p (Eq. 10, so ANDA works without ADA); the choice is printed at start.
                   'ada': always the pipe's p (needs a pipe); 'heuristic': always the heuristic's p.
      negative     the NDA transform: 'jigsaw' (default; `grid` x `grid` patches permuted per image), 'stitch',
                   'cutout', 'mixup', 'cutmix', 'rotation'.
      grid         jigsaw's grid size, 2 (default) to 4.
      permutation  jigsaw's permutation: 'released' (default; `jigsaw_k` as released: put back column by column,
                   so the unchanged image comes out 1 time in 23) or 'non_identity' (never the unchanged image);
                   see plugins.anda.negatives.jigsaw.
    Negatives are built from real images before the augment pipe, which then applies to them as to every image D
    sees; they hold no graph to G, so they never reach G's gradient. 'sampled' and 'weighted' build them in D main
    from that round's reals.

    Stats: 'ANDA/alpha', 'ANDA/negative_share' (share of D's fake slots that held a negative; for 'weighted' the
    weight w; for 'released' 1 when the blend was applied), 'ANDA/scores/negative' (D's logits on negatives),
    'ANDA/eta' at the heuristic's adjustments and 'ANDA/score_gap' = mean D(x) - mean D(G(z)) (by the loss).
    """

    name = 'anda'
    stats_prefix = 'ANDA'
    sets = ('d_fake_term',)
    reports_score_gap = True

    def __init__(self, lam=0.2, estimator='released', alpha='auto', negative='jigsaw', grid=2, permutation='released',
                 ada_target=None):
        self.check_options(lam=lam, estimator=estimator, alpha=alpha, negative=negative, grid=grid,
                           permutation=permutation)
        self.lam = float(lam)
        self.estimator = estimator
        self.ada_target = ada_target
        self.alpha_source = resolve_p_source(alpha, ada_target)
        self.negative = negative
        self.negative_options = {'grid': int(grid), 'permutation': permutation} if negative == 'jigsaw' else {}
        self.augment_pipe = None
        self.pseudo = None  # 'released': the negatives of the last G main round

    @classmethod
    def reads_p(cls, options, facts):
        source = resolve_p_source(options['alpha'], facts.get('ada_target'))
        return 'heuristic' if source == 'heuristic' else "alpha is ADA's p"

    @staticmethod
    def check_options(lam, estimator, alpha, negative, grid, permutation):
        """Validate the ANDA options; raises ValueError naming the bad value and what is allowed."""
        check_range('lam', lam, 0, 1, high_inclusive=False)
        check_choice('estimator', estimator, ESTIMATORS)
        check_choice('alpha', alpha, P_SOURCES)
        check_choice('negative', negative, tuple(NEGATIVE_TRANSFORMS))
        check_int_range('grid', grid, 2, 4)
        check_choice('permutation', permutation, PERMUTATIONS)
        for name, value, default in (('grid', grid, 2), ('permutation', permutation, 'released')):
            if value != default and negative != 'jigsaw':
                raise ValueError(f"{name}={value!r} applies only to negative 'jigsaw', not {negative!r}")

    @property
    def active(self):
        return self.lam > 0

    def setup(self, run):
        if self.alpha_source == 'ada':
            require_pipe_p('ANDA alpha', run.augment_pipe, self.ada_target,
                           'alpha would be 1 throughout, so D would never see a negative (ANDA off)')
        self.augment_pipe = run.augment_pipe
        if self.alpha_source == 'heuristic':
            return "ANDA: alpha is the overfitting heuristic's p (Eq. 10)"
        return 'ANDA: alpha is ' + describe_pipe_p(self.augment_pipe, self.ada_target)

    def observe_g_main(self, real_img, gen_img):
        """'released': draw the negatives of this G main round's reals, as released (`self.pseudo_data`)."""
        if self.estimator == 'released':
            self.pseudo = make_negatives(real_img.detach(), self.negative, **self.negative_options)

    def d_fake_term(self, fake):
        """Eq. S4's fake term: softplus(D(T(images))) of each of `d_fake_inputs`'s batches, times its weight, summed
        per image; and D's logits of the generated images among them."""
        batches = self.d_fake_inputs(fake.gen_img, fake.real_img, fake.p)
        loss, all_logits = 0, []
        for images, weight, _is_negative in batches:
            logits = fake.logits(images)
            per_image = torch.nn.functional.softplus(logits)  # -log(1 - sigmoid(logits))
            loss = loss + (per_image if weight is None else weight * per_image)
            all_logits.append(logits)
        return loss, self.generated_logits(batches, all_logits)

    def d_fake_inputs(self, gen_img, real_img, p):
        """D's fake batches for the chunk: a list of (images, weight, is_negative) where `d_fake_term` averages
        softplus(D(T(images))) over each batch and sums those means times `weight` (None: 1) to Eq. S4's fake term
        ('weighted' gives two batches, the others one); `is_negative` marks the negatives (a per-image mask, a
        scalar True for a batch of negatives, None for none). alpha is the heuristic's `p` or the pipe's p."""
        alpha = (self.augment_pipe.p if self.alpha_source == 'ada' else p).detach().to(torch.float32).clamp(0, 1)
        if self.estimator == 'released':
            if self.pseudo is None:
                raise RuntimeError("ANDA's released estimator needs the negatives of a G main round before D main")
            negatives = self.pseudo
        else:
            negatives = make_negatives(real_img.detach(), self.negative, **self.negative_options)
        if gen_img.shape[0] != negatives.shape[0]:
            raise ValueError(f'ANDA pairs each fake with a negative of a real image; got {gen_img.shape[0]} '
                             f'fakes and {negatives.shape[0]} negatives')
        negatives = negatives.to(gen_img.dtype)
        negative_weight = self.lam * (1 - alpha)
        training_stats.report('ANDA/alpha', alpha)
        if self.estimator == 'weighted':
            training_stats.report('ANDA/negative_share', negative_weight)
            return [(gen_img, 1 - negative_weight, None), (negatives, negative_weight, torch.ones([], dtype=torch.bool))]
        if self.estimator == 'sampled':
            is_negative = torch.rand([gen_img.shape[0]], device=gen_img.device) < negative_weight
            images = torch.where(is_negative[:, None, None, None], negatives, gen_img)
        else:  # released
            any_flag = (torch.rand([gen_img.shape[0]], device=gen_img.device) < alpha).any()
            blend = torch.where(any_flag, 0.0, self.lam)
            images = blend * negatives + (1 - blend) * gen_img
            is_negative = (~any_flag).expand(gen_img.shape[0])
        training_stats.report('ANDA/negative_share', is_negative.to(torch.float32))
        return [(images, None, is_negative)]

    def generated_logits(self, batches, logits):
        """Report D's logits on the negatives; return those of the generated images ('sampled': its other slots)."""
        for (_images, _weight, is_negative), batch_logits in zip(batches, logits):
            if is_negative is not None:
                scores = batch_logits.flatten() if is_negative.ndim == 0 else batch_logits.flatten()[is_negative]
                training_stats.report('ANDA/scores/negative', scores)
            if is_negative is None or is_negative.ndim == 1:
                generated = batch_logits if is_negative is None or self.estimator != 'sampled' else \
                    batch_logits[~is_negative]
        return generated

