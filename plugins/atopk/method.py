"""ATop-k's part of the plugin loss (`plugins.loss.Loss`): which fakes of each minibatch update G."""

import torch
from torch_utils import training_stats

from plugins.atopk.core import KController, linear_k, select_topk_logits, split_k_across_chunks
from plugins.common.options import check_choice, check_int_range, check_range

MODES = ('adaptive', 'fixed', 'linear', 'worst')


class ATopk:
    """G's main loss over the k selected fakes only: mean(softplus(-topk(D(G(z)), k))) (Eq. 12).

    Options:
      mode         'adaptive' (default): k from Eq. 11, driven by the overfitting heuristic's p (Eq. 10).
                   'fixed': k = `k` for the whole run (Table 5's fixed Top-k).
                   'linear': Linear Top-k (Sinha et al. 2020): k falls linearly from the batch size at 0 kimg to
                   ceil(nu * batch) at `linear_kimg` kimg, then stays there.
                   'worst': Worst-k (Fig. 3): the k LOWEST-scoring fakes update G; k is adaptive exactly as in
                   'adaptive' (same p, same Eq. 11 walk) unless `k` is given.
      k            integer >= 1; required by 'fixed', optional for 'worst', refused by the other modes; at most the
                   batch size (checked once the batch is known).
      nu           Linear Top-k's final fraction, 0 < nu <= 1 (default 0.75, the ATop-k paper's value).
      linear_kimg  kimg over which Linear Top-k decays (default 2000, the paper's training length).
      seed         seed of the Eq. 11 draws (identical on every rank, so k is too, with no communication).
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

    def __init__(self, mode='adaptive', k=None, nu=0.75, linear_kimg=2000, seed=0):
        self.check_options(mode=mode, k=k, nu=nu, linear_kimg=linear_kimg, seed=seed)
        self.mode = mode
        self.fixed_k = None if k is None else int(k)
        self.nu = float(nu)
        self.linear_kimg = float(linear_kimg)
        self.seed = int(seed)
        self.worst = mode == 'worst'
        self.adaptive = mode == 'adaptive' or (mode == 'worst' and k is None)
        self.controller = None  # KController, created once the batch is known
        self.p_host = 0.0  # host copy of the heuristic's p, refreshed at each adjustment
        self.k = None  # global k of the current minibatch (None in the first: all fakes)
        self._chunk_ks = None  # this rank's k per round in the current minibatch
        self._fakes_used = None  # fakes used by G in the current minibatch, all chunks
        self._loss_divisor = None  # fakes used in the minibatch / number of chunks

    uses_heuristic = True  # p is reported in every mode

    @staticmethod
    def check_options(mode='adaptive', k=None, nu=0.75, linear_kimg=2000, seed=0):
        """Validate the ATop-k options; raises ValueError naming the bad value and what is allowed."""
        check_choice('mode', mode, MODES)
        if k is not None:
            check_int_range('k', k, 1)
            if mode not in ('fixed', 'worst'):
                raise ValueError(f"k={k!r} applies only to mode 'fixed' or 'worst' (mode {mode!r} sets k itself)")
        elif mode == 'fixed':
            raise ValueError("mode 'fixed' needs an integer k >= 1, e.g. {\"mode\": \"fixed\", \"k\": 3}")
        check_range('nu', nu, 0, 1, low_inclusive=False)
        check_range('linear_kimg', linear_kimg, 0, low_inclusive=False)
        check_int_range('seed', seed, 0)

    def begin_minibatch(self, tracker, rank, world_size, p_host):
        """Set k for the minibatch that starts (the tracker has counted it) and split it over the chunks."""
        self.p_host = p_host
        if tracker.batch_size is None:  # first minibatch: all fakes, the structure is being learnt
            self.k = self._chunk_ks = self._fakes_used = self._loss_divisor = None
        else:
            if self.adaptive:
                self.k = self.controller.step(self.p_host)
            elif self.mode == 'linear':
                self.k = linear_k(tracker.nimg / 1000, tracker.batch_size, self.nu, self.linear_kimg)
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

    def g_main_loss(self, gen_logits, round_index):
        """G's main loss of one chunk, to be multiplied by the training loop's gain and backpropagated."""
        chunk_k = gen_logits.shape[0] if self._chunk_ks is None else self._chunk_ks[round_index]
        if chunk_k == gen_logits.shape[0] and (self._loss_divisor is None or self._loss_divisor == chunk_k):
            loss = torch.nn.functional.softplus(-gen_logits)  # every fake: upstream's loss
            training_stats.report('Loss/G/loss', loss)
            return loss.mean()
        selected = gen_logits if chunk_k == gen_logits.shape[0] else \
            select_topk_logits(gen_logits, chunk_k, worst=self.worst)
        loss = torch.nn.functional.softplus(-selected)
        training_stats.report('Loss/G/loss', loss)
        return loss.sum() / self._loss_divisor

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
