"""ATop-k's part of the plugin loss (`plugins.loss.Loss`): which fakes of each minibatch update G."""

import torch
from torch_utils import training_stats

from plugins.atopk.core import KController, linear_ramp_k, select_topk_logits, split_k_across_chunks, topk_gan_k
from plugins.common.method import Method
from plugins.common.options import check_choice, check_int_range, check_range

MODES = ('adaptive', 'fixed', 'linear', 'worst')
SCHEDULES = ('topk_gan', 'ramp')
LINEAR_DEFAULTS = dict(schedule='topk_gan', nu=0.75, gamma=0.99, linear_kimg=2000)  # Linear Top-k's options


class ATopk(Method):
    """G's main loss over the k selected fakes only: mean(softplus(-topk(D(G(z)), k))) (Eq. 12).

    Options:
      mode         'adaptive' (default): k from Eq. 11, driven by the overfitting heuristic's p (Eq. 10).
                   'fixed': k = `k` for the whole run (Table 5's fixed Top-k).
                   'linear': Linear Top-k (Sinha et al. 2020), k from `schedule`.
                   'worst': Worst-k (Fig. 3): the k LOWEST-scoring fakes update G; k is adaptive exactly as in
                   'adaptive' (same p, same Eq. 11 walk) unless `k` is given.
      k            integer >= 1; required by 'fixed', optional for 'worst', refused by the other modes; at most the
                   batch size (checked once the batch is known).
      schedule     Linear Top-k's k: 'topk_gan' (default), Top-k GAN's published k = ceil(batch * max(gamma^epochs,
                   nu)) with epochs over the training set (`topk_gan_k`); 'ramp', a linear fall from the batch size
                   to ceil(nu * batch) over `linear_kimg` kimg (`linear_ramp_k`).
      nu           Linear Top-k's final fraction, 0 < nu <= 1 (default 0.75, the ATop-k paper's value).
      gamma        'topk_gan''s decay per epoch, 0 < gamma <= 1 (default 0.99, Sinha et al.'s).
      linear_kimg  kimg over which 'ramp' falls (default 2000, the paper's training length).
                   These four apply to mode 'linear' only (gamma to 'topk_gan', linear_kimg to 'ramp'); given
                   elsewhere they are refused rather than ignored.
      seed         seed of the Eq. 11 draws (identical on every rank, so k is too, with no communication); by default
                   the run's --seed, so runs with different seeds walk differently.
    train.py passes the run's seed, training-set size and batch (`random_seed`, `training_set_size`, `batch_size`,
    patch 0010), so a k above the batch is refused before anything is written. On an endless synthetic stream
    the size is its nominal 50,000, so 'topk_gan' epochs mean little there; use 'ramp'.
    The heuristic's p is reported as 'ATopk/p' in every mode but drives k only in 'adaptive' and adaptive 'worst'.

    Cadence: k moves once per minibatch, at its start, before G's update (Fig. 14 shows k changing between
    consecutive iterations); p moves every `interval` minibatches. The first minibatch, whose size is still being
    learnt (see MinibatchTracker), uses all its fakes: k starts at the batch size, Eq. 11's and Linear Top-k's
    starting value; only 'fixed' differs, for that one minibatch.

    Chunks: when a minibatch comes in several chunks (rounds x ranks), the global k is split over them with
    `split_k_across_chunks` in round-major order and each chunk selects its own top (or bottom) k_i: a per-chunk
    selection, since a global top-k would need every chunk's logits before any backward. If k is below the number
    of chunks each chunk still uses one fake ('ATopk/fakes_used' reports the true count). Each chunk's loss is
    sum(softplus(-selected)) / (fakes used in the minibatch / number of chunks), so the accumulated gradient is that
    of the mean over all used fakes with upstream's per-round scaling; a chunk that uses all its fakes computes
    upstream's own mean.

    Stats: 'ATopk/k', 'ATopk/fakes_used' and 'ATopk/p' once per minibatch, 'ATopk/eta' at each p adjustment and
    'ATopk/score_gap' = mean D(x) - mean D(G(z)) per D main chunk (reported by the loss).
    """

    name = 'atopk'
    stats_prefix = 'ATopk'
    sets = ('g_main_loss',)
    reports_score_gap = True
    aug = 'noaug'  # the paper's runs: StyleGAN2 without augmentation

    def __init__(self, mode='adaptive', k=None, schedule=None, nu=None, gamma=None, linear_kimg=None, seed=None,
                 random_seed=0, training_set_size=None, batch_size=None):
        self.check_options(mode=mode, k=k, schedule=schedule, nu=nu, gamma=gamma, linear_kimg=linear_kimg, seed=seed)
        schedule, nu, gamma, linear_kimg = [default if value is None else value for value, default in
                                            zip((schedule, nu, gamma, linear_kimg), LINEAR_DEFAULTS.values())]
        if k is not None and batch_size is not None and k > batch_size:  # train.py knows the batch up front
            raise ValueError(f'k={k} exceeds the batch size {batch_size}; k must lie in [1, {batch_size}]')
        self.mode = mode
        self.fixed_k = None if k is None else int(k)
        self.schedule = schedule
        self.nu = float(nu)
        self.gamma = float(gamma)
        self.linear_kimg = float(linear_kimg)
        self.seed = int(random_seed if seed is None else seed)
        self.training_set_size, self.batch_size = training_set_size, batch_size
        self.worst = mode == 'worst'
        self.adaptive = mode == 'adaptive' or (mode == 'worst' and k is None)
        self.controller = None  # KController, created once the batch is known
        self.p_host = 0.0  # host copy of the heuristic's p, refreshed at each adjustment
        self.k = None  # global k of the current minibatch (None in the first: all fakes)
        self._chunk_ks = None  # this rank's k per round in the current minibatch
        self._fakes_used = None  # fakes used by G in the current minibatch, all chunks
        self._loss_divisor = None  # fakes used in the minibatch / number of chunks

    def setup(self, run):
        if self.fixed_k is not None and self.fixed_k == self.batch_size:  # its neutral setting: said, as the loss says
            return (f'atopk: off with these options (mode={self.mode!r}, k={self.fixed_k}, the whole batch): every '
                    f'fake counts, as without it')
        return None

    @classmethod
    def reads_p(cls, options, facts):
        return 'heuristic'  # reported in every mode, drives k in the adaptive ones

    @staticmethod
    def check_options(mode, k, schedule, nu, gamma, linear_kimg, seed):
        """Validate the ATop-k options; raises ValueError naming the bad value and what is allowed."""
        check_choice('mode', mode, MODES)
        given = [name for name, value in zip(LINEAR_DEFAULTS, (schedule, nu, gamma, linear_kimg)) if value is not None]
        if given and mode != 'linear':
            verb = 'applies' if len(given) == 1 else 'apply'
            raise ValueError(f"{', '.join(given)} {verb} only to mode 'linear' (Linear Top-k); mode is {mode!r}")
        if schedule is not None:
            check_choice('schedule', schedule, SCHEDULES)
        if gamma is not None:
            check_range('gamma', gamma, 0, 1, low_inclusive=False)
            if schedule == 'ramp':
                raise ValueError("gamma applies only to schedule 'topk_gan'; 'ramp' falls over linear_kimg")
        if nu is not None:
            check_range('nu', nu, 0, 1, low_inclusive=False)
        if linear_kimg is not None:
            check_range('linear_kimg', linear_kimg, 0, low_inclusive=False)
            if schedule != 'ramp':
                raise ValueError("linear_kimg applies only to schedule 'ramp'; 'topk_gan' falls by gamma per epoch")
        if k is not None:
            check_int_range('k', k, 1)
            if mode not in ('fixed', 'worst'):
                raise ValueError(f"k={k!r} applies only to mode 'fixed' or 'worst' (mode {mode!r} sets k itself)")
        elif mode == 'fixed':
            raise ValueError("mode 'fixed' needs an integer k >= 1, e.g. {\"mode\": \"fixed\", \"k\": 3}")
        if seed is not None:
            check_int_range('seed', seed, 0)

    def _linear_k(self, tracker):
        if self.schedule == 'ramp':
            return linear_ramp_k(tracker.nimg / 1000, tracker.batch_size, self.nu, self.linear_kimg)
        if self.training_set_size is None:
            raise ValueError("ATop-k's Linear Top-k counts epochs of the training set, whose size train.py passes "
                             "as training_set_size; give it, or use \"schedule\": \"ramp\"")
        return topk_gan_k(tracker.nimg, tracker.batch_size, self.nu, self.gamma, self.training_set_size)

    def begin_minibatch(self, tracker, rank, world_size, p_host):
        """Set k for the minibatch that starts (the tracker has counted it) and split it over the chunks."""
        self.p_host = p_host
        if tracker.batch_size is None:  # first minibatch: all fakes, the structure is being learnt
            self.k = self._chunk_ks = self._fakes_used = self._loss_divisor = None
        else:
            if self.adaptive:
                self.k = self.controller.step(self.p_host)
            elif self.mode == 'linear':
                self.k = self._linear_k(tracker)
            else:
                self.k = self.fixed_k
            all_ks = split_k_across_chunks(self.k, tracker.all_chunk_sizes(world_size))
            self._chunk_ks = all_ks[rank::world_size]
            self._fakes_used = sum(all_ks)
            self._loss_divisor = self._fakes_used / len(all_ks)
        training_stats.report('ATopk/p', self.p_host)

    def end_minibatch(self, tracker):
        """Report the k and the fakes used by the minibatch whose G rounds just ended; after the first, check k
        against the batch size just learnt and start the Eq. 11 controller."""
        if self.controller is None:
            if self.fixed_k is not None and self.fixed_k > tracker.batch_size:
                raise ValueError(f'k={self.fixed_k} exceeds the batch size {tracker.batch_size}; '
                                 f'k must lie in [1, {tracker.batch_size}]')
            self.controller = KController(tracker.batch_size, seed=self.seed)
        training_stats.report('ATopk/k', float(tracker.batch_size if self.k is None else self.k))
        training_stats.report('ATopk/fakes_used', float(tracker.batch_size if self._fakes_used is None
                                                         else self._fakes_used))

    def g_main(self, g):
        """G's main loss of one chunk: softplus(-D(G(z))) of the chunk's selected fakes, summed and divided so that
        the minibatch's chunks together give the mean over its k."""
        gen_logits = g.gen_logits
        chunk_k = gen_logits.shape[0] if self._chunk_ks is None else self._chunk_ks[g.round_index]
        if chunk_k == gen_logits.shape[0] and (self._loss_divisor is None or self._loss_divisor == chunk_k):
            loss = torch.nn.functional.softplus(-gen_logits)  # every fake: upstream's loss
            training_stats.report('Loss/G/loss', loss)
            g.replace_loss(loss.mean())
            return
        selected = gen_logits if chunk_k == gen_logits.shape[0] else \
            select_topk_logits(gen_logits, chunk_k, worst=self.worst)
        loss = torch.nn.functional.softplus(-selected)
        training_stats.report('Loss/G/loss', loss)
        g.replace_loss(loss.sum() / self._loss_divisor)

    def state_dict(self):
        return {'controller': None if self.controller is None else
                (self.controller.batch_size, self.controller.state_dict()),
                'p_host': self.p_host, 'k': self.k}

    def load_state_dict(self, state):
        self.controller = None
        if state['controller'] is not None:
            batch_size, controller_state = state['controller']
            self.controller = KController(batch_size, seed=self.seed)
            self.controller.load_state_dict(controller_state)
        self.p_host, self.k = state['p_host'], state['k']
        self._chunk_ks = self._fakes_used = self._loss_divisor = None

    def __getstate__(self):  # keep the controller's generator as plain state, whatever torch's pickling supports
        state = dict(self.__dict__)
        state['controller'] = self.state_dict()['controller']
        return state

    def __setstate__(self, state):
        controller = state.pop('controller')
        self.__dict__.update(state)
        self.load_state_dict({'controller': controller, 'p_host': state['p_host'], 'k': state['k']})
