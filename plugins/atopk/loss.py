"""ATop-k as a drop-in upstream loss: `--loss plugins.atopk.Loss --loss-kwargs '{"mode": "adaptive"}'`.

Needs upstream's `training` and `torch_utils` packages on sys.path (train.py puts them there)."""

import math

import torch
import torch.distributed
from torch_utils import training_stats
from training.loss import StyleGAN2Loss

from plugins.atopk.core import KController, linear_k, select_topk_logits, split_k_across_chunks
from plugins.common.options import check_choice, check_int_range, check_range
from plugins.common.overfit import OverfitHeuristic

MODES = ('adaptive', 'fixed', 'linear', 'worst')
_G_MAIN_PHASES = ('Gmain', 'Gboth')
_D_MAIN_PHASES = ('Dmain', 'Dboth')


def _rank_and_world_size():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class Loss(StyleGAN2Loss):
    """StyleGAN2 loss whose generator step uses only k fakes of each minibatch (ATop-k, Eq. 10-12).

    D (non-saturating loss, lazy R1) and G's path-length regularisation are upstream's own code; only G's main
    loss changes to mean(softplus(-topk(D(G(z)), k))).

    Options (all have defaults; `check_options` validates them and train.py turns its ValueError into a usage
    error):
      mode         'adaptive' (default): k from Eq. 11, driven by the overfitting probability p.
                   'fixed': k = `k` for the whole run (Table 5's fixed Top-k).
                   'linear': Linear Top-k (Sinha et al. 2020): k falls linearly from the batch size at 0 kimg to
                   ceil(nu * batch) at `linear_kimg` kimg, then stays there.
                   'worst': Worst-k (Fig. 3): the k LOWEST-scoring fakes update G. k is adaptive exactly as in
                   'adaptive' (same p, same Eq. 11 walk), so that Worst-k and ATop-k differ only in which fakes
                   they pick, as in the paper's comparison; give `k` to hold it fixed instead.
      k            integer >= 1; required by 'fixed', optional for 'worst', refused by the other modes. It must
                   not exceed the batch size (checked once the batch is known, see below).
      nu           Linear Top-k's final fraction, 0 < nu <= 1 (default 0.75, the ATop-k paper's value).
      linear_kimg  kimg over which Linear Top-k decays (default 2000, the paper's training length).
      target, speed_kimg, interval
                   the overfitting heuristic (Eq. 10, ADA's r_t): target 0.6, p moves 0 -> 1 in 500 kimg,
                   adjusted every 4 minibatches. p is this loss's own, independent of ADA's augment p; it is
                   kept (and reported) in every mode, but drives k only in 'adaptive' and adaptive 'worst'.
      seed         seed of the Eq. 11 draws (identical on every rank, so k is too, with no communication).
    plus upstream's style_mixing_prob, r1_gamma, pl_batch_shrink, pl_decay, pl_weight.

    Cadence. One "minibatch" is one training iteration: all accumulation rounds of the G main phase. p is adjusted
    (from the signs of every real logit that D computed in the Dmain/Dboth phases on all ranks since the previous
    adjustment) at the start of every `interval`-th minibatch, i.e. after minibatches 4, 8, ..., as ADA does.
    k then moves once per minibatch, at the start of the minibatch before G's update (Fig. 14 of the paper shows
    k changing between consecutive iterations). k starts at the batch size.

    Batch inference. The training loop does not tell the loss its batch size, so the loss learns it: a minibatch
    starts with the first Gmain/Gboth call after a call of any other phase, and its rounds are the consecutive
    Gmain/Gboth calls. The chunk sizes seen in the first minibatch (normally batch_gpu each) are the round
    structure; the global batch is their sum times the world size (upstream gives every rank the same chunks).
    Later minibatches must repeat that structure (RuntimeError otherwise). Consequently the first minibatch
    (4 images with --cfg cpu) always uses all its fakes, whatever the mode: k equals the batch there, which
    is also Eq. 11's and Linear Top-k's starting value; only 'fixed' differs, for that one minibatch.

    Chunks. When a minibatch is split into several chunks (rounds x ranks), the global k is split with
    `split_k_across_chunks` over the chunks in round-major order (round 0 of ranks 0..W-1, then round 1, ...),
    and each chunk selects its top (or bottom) k_i of its own fakes: the selection is per chunk, not a global
    top-k, which would need every chunk's logits before any backward. If k is below the number of chunks each
    chunk still uses one fake, so more than k fakes are used ('ATopk/fakes_used' reports the true count). Each
    chunk's loss is sum(softplus(-selected)) / (fakes used in the minibatch / number of chunks), so the
    accumulated gradient is that of the mean over all used fakes, with the same per-round scaling as upstream.

    Images. The loss counts images itself for 'linear': minibatches completed so far times the batch, i.e.
    upstream's cur_nimg at the time of the minibatch (a resumed run starts again at 0, as upstream does).

    Reported with training_stats: 'ATopk/k' and 'ATopk/fakes_used' (once per minibatch), 'ATopk/p' (once per
    minibatch), 'ATopk/eta' (at each p adjustment), 'ATopk/score_gap' = mean D(x) - mean D(G(z)) (per Dmain/Dboth
    chunk, from the logits D already computes there), and upstream's Loss/* keys ('Loss/G/loss' holds the
    selected fakes' per-sample losses). The only host reads are one per p adjustment (p and eta together).

    `state_dict`/`load_state_dict` hold the ATop-k state; pickling the loss keeps it as well.
    """

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None,
                 mode: str = 'adaptive', k: int = None, nu: float = 0.75, linear_kimg: float = 2000,
                 target: float = 0.6, speed_kimg: float = 500, interval: int = 4, seed: int = 0,
                 style_mixing_prob=0.9, r1_gamma=10, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2):
        self.check_options(mode=mode, k=k, nu=nu, linear_kimg=linear_kimg, target=target, speed_kimg=speed_kimg,
                           interval=interval, seed=seed)
        super().__init__(device=device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                         style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma, pl_batch_shrink=pl_batch_shrink,
                         pl_decay=pl_decay, pl_weight=pl_weight)
        self.mode = mode
        self.fixed_k = None if k is None else int(k)
        self.nu = float(nu)
        self.linear_kimg = float(linear_kimg)
        self.seed = int(seed)
        self.worst = mode == 'worst'
        self.adaptive = mode == 'adaptive' or (mode == 'worst' and k is None)
        self.heuristic = OverfitHeuristic(target=target, interval=interval, speed_kimg=speed_kimg).to(device)

        self.chunk_sizes = None  # this rank's chunk sizes per round, learnt in the first minibatch
        self.batch_size = None  # global batch, learnt in the first minibatch
        self.controller = None  # KController, created once the batch is known
        self.minibatches = 0  # minibatches started
        self.nimg = 0  # images of the completed minibatches (all ranks)
        self.p_host = 0.0  # host copy of the heuristic's p, refreshed at each adjustment
        self.k = None  # global k of the current minibatch (None in the first: all fakes)
        self._run = []  # chunk sizes of the current minibatch's G main calls so far
        self._run_open = False
        self._chunk_ks = None  # this rank's k per round for the current minibatch
        self._fakes_used = None  # fakes used by G in the current minibatch, all chunks
        self._loss_divisor = None  # fakes used in the minibatch / number of chunks
        self._prev_phase = None
        self._capture = None  # (is_real, logits) pairs collected by run_D during a Dmain/Dboth call
        self._capture_real_ptr = None

    @staticmethod
    def check_options(mode='adaptive', k=None, nu=0.75, linear_kimg=2000, target=0.6, speed_kimg=500, interval=4,
                      seed=0, **upstream_options):
        """Validate the ATop-k options (upstream's own are left to upstream); raises ValueError."""
        check_choice('mode', mode, MODES)
        if k is not None:
            check_int_range('k', k, 1)
            if mode not in ('fixed', 'worst'):
                raise ValueError(f"k={k!r} applies only to mode 'fixed' or 'worst' (mode {mode!r} sets k itself)")
        elif mode == 'fixed':
            raise ValueError("mode 'fixed' needs an integer k >= 1, e.g. {\"mode\": \"fixed\", \"k\": 3}")
        check_range('nu', nu, 0, 1, low_inclusive=False)
        check_range('linear_kimg', linear_kimg, 0, low_inclusive=False)
        check_range('target', target, 0, 1)
        check_range('speed_kimg', speed_kimg, 0, low_inclusive=False)
        check_int_range('interval', interval, 1)
        check_int_range('seed', seed, 0)

    # ------------------------------------------------------------------------------------------------------------
    # Minibatch bookkeeping.

    def _close_run(self):
        """End the current minibatch's G main run: learn (first time) or check the round structure, report k."""
        if not self._run_open:
            return
        self._run_open = False
        _rank, world = _rank_and_world_size()
        if self.chunk_sizes is None:
            self.chunk_sizes = list(self._run)
            self.batch_size = sum(self.chunk_sizes) * world
            if self.fixed_k is not None and self.fixed_k > self.batch_size:
                raise ValueError(f'k={self.fixed_k} exceeds the batch size {self.batch_size}; '
                                 f'k must lie in [1, {self.batch_size}]')
            self.controller = KController(self.batch_size, seed=self.seed)
        elif self._run != self.chunk_sizes:
            raise RuntimeError(f'{type(self).__name__}: a minibatch came as G chunks {self._run}, the first as '
                               f'{self.chunk_sizes}; the batch structure must not change during training')
        used = self.batch_size if self._fakes_used is None else self._fakes_used
        training_stats.report('ATopk/k', float(self.batch_size if self.k is None else self.k))
        training_stats.report('ATopk/fakes_used', float(used))
        self.nimg += self.batch_size

    def _all_chunk_sizes(self):
        """Every chunk of a minibatch in round-major order: round 0 of ranks 0..W-1, round 1, ..."""
        _rank, world = _rank_and_world_size()
        return [size for size in self.chunk_sizes for _ in range(world)]

    def _begin_minibatch(self):
        index = self.minibatches
        self.minibatches += 1
        self._run, self._run_open = [], True
        if self.batch_size is None:  # first minibatch: all fakes, the structure is being learnt
            self.k, self._chunk_ks, self._loss_divisor, self._fakes_used = None, None, None, None
        else:
            if index % self.heuristic.interval == 0:
                p = self.heuristic.adjust(self.batch_size)
                p_host, eta_host = torch.stack([p, self.heuristic.last_eta]).cpu().tolist()
                self.p_host = p_host
                training_stats.report('ATopk/eta', [eta_host] if math.isfinite(eta_host) else [])
            self.k = self._next_k()
            rank, world = _rank_and_world_size()
            all_ks = split_k_across_chunks(self.k, self._all_chunk_sizes())
            self._chunk_ks = all_ks[rank::world]
            self._fakes_used = sum(all_ks)
            self._loss_divisor = self._fakes_used / len(all_ks)
        training_stats.report('ATopk/p', self.p_host)

    def _next_k(self):
        if self.adaptive:
            return self.controller.step(self.p_host)
        if self.mode == 'linear':
            return linear_k(self.nimg / 1000, self.batch_size, self.nu, self.linear_kimg)
        return self.fixed_k

    def _enter_phase(self, phase, chunk_size):
        """Track minibatches; for a G main call return (k of this chunk, loss divisor)."""
        if phase not in _G_MAIN_PHASES:
            self._close_run()
            self._prev_phase = phase
            return None
        run_complete = self.chunk_sizes is not None and len(self._run) >= len(self.chunk_sizes)
        if self._prev_phase not in _G_MAIN_PHASES or run_complete:
            self._close_run()
            self._begin_minibatch()
        self._prev_phase = phase
        round_index = len(self._run)
        self._run.append(chunk_size)
        if self._chunk_ks is None:
            return chunk_size, chunk_size
        if chunk_size != self.chunk_sizes[round_index]:
            raise RuntimeError(f'{type(self).__name__}: G chunk {round_index} has {chunk_size} fakes, the first '
                               f'minibatch had {self.chunk_sizes[round_index]}; the batch structure must not change')
        return self._chunk_ks[round_index], self._loss_divisor

    # ------------------------------------------------------------------------------------------------------------
    # Phases.

    def run_D(self, img, c, sync):
        logits = super().run_D(img, c, sync)
        if self._capture is not None:
            self._capture.append((img.data_ptr() == self._capture_real_ptr, logits.detach()))
        return logits

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        assert phase in ['Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth']
        selection = self._enter_phase(phase, gen_z.shape[0])
        if phase in _G_MAIN_PHASES:
            do_Gpl = phase == 'Gboth' and self.pl_weight != 0
            self._accumulate_topk_gmain(gen_z, gen_c, sync=(sync and not do_Gpl), gain=gain, selection=selection)
            if do_Gpl:
                super().accumulate_gradients('Greg', real_img, real_c, gen_z, gen_c, sync, gain)
        elif phase in _D_MAIN_PHASES:
            self._capture, self._capture_real_ptr = [], real_img.data_ptr()
            try:
                super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)
                captured = self._capture
            finally:
                self._capture = self._capture_real_ptr = None
            self._observe_d_logits(captured)
        else:
            super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)

    def _accumulate_topk_gmain(self, gen_z, gen_c, sync, gain, selection):
        chunk_k, divisor = selection
        with torch.autograd.profiler.record_function('Gmain_forward'):
            gen_img, _gen_ws = self.run_G(gen_z, gen_c, sync=sync)
            gen_logits = self.run_D(gen_img, gen_c, sync=False)
            training_stats.report('Loss/scores/fake', gen_logits)
            training_stats.report('Loss/signs/fake', gen_logits.sign())
            if chunk_k == gen_logits.shape[0]:
                selected = gen_logits
            else:
                selected = select_topk_logits(gen_logits, chunk_k, worst=self.worst)
            loss_Gmain = torch.nn.functional.softplus(-selected)  # -log(sigmoid(selected logits))
            training_stats.report('Loss/G/loss', loss_Gmain)
        with torch.autograd.profiler.record_function('Gmain_backward'):
            loss_Gmain.sum().mul(gain / divisor).backward()

    @torch.no_grad()
    def _observe_d_logits(self, captured):
        real = [logits for is_real, logits in captured if is_real]
        fake = [logits for is_real, logits in captured if not is_real]
        for logits in real:
            self.heuristic.accumulate(logits)
        if real and fake:  # upstream's Dmain runs D once on the fakes and once on the reals
            real_mean = real[0].mean() if len(real) == 1 else torch.cat([l.flatten() for l in real]).mean()
            fake_mean = fake[0].mean() if len(fake) == 1 else torch.cat([l.flatten() for l in fake]).mean()
            training_stats.report('ATopk/score_gap', real_mean - fake_mean)

    # ------------------------------------------------------------------------------------------------------------
    # State.

    def state_dict(self):
        """The ATop-k state (not the networks): heuristic buffers, Eq. 11 controller, counters."""
        return {
            'heuristic': {name: value.clone() for name, value in self.heuristic.state_dict().items()},
            'controller': None if self.controller is None else self.controller.state_dict(),
            'chunk_sizes': None if self.chunk_sizes is None else list(self.chunk_sizes),
            'batch_size': self.batch_size, 'minibatches': self.minibatches, 'nimg': self.nimg,
            'p_host': self.p_host, 'k': self.k,
        }

    def load_state_dict(self, state):
        """Restore `state_dict()`; the next G main call starts a new minibatch."""
        self.heuristic.load_state_dict(state['heuristic'])
        self.chunk_sizes = None if state['chunk_sizes'] is None else list(state['chunk_sizes'])
        self.batch_size = state['batch_size']
        self.controller = None
        if state['controller'] is not None:
            self.controller = KController(self.batch_size, seed=self.seed)
            self.controller.load_state_dict(state['controller'])
        self.minibatches, self.nimg = state['minibatches'], state['nimg']
        self.p_host, self.k = state['p_host'], state['k']
        self._run, self._run_open, self._prev_phase = [], False, None
        self._chunk_ks = self._fakes_used = self._loss_divisor = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_capture'] = state['_capture_real_ptr'] = None
        if self.controller is not None:  # keep the generator as plain state, whatever torch's pickling supports
            state['controller'] = ('KController', self.controller.batch_size, self.controller.state_dict())
        return state

    def __setstate__(self, state):
        controller = state.get('controller')
        if isinstance(controller, tuple):
            _tag, batch_size, controller_state = controller
            state['controller'] = KController(batch_size, seed=state['seed'])
            state['controller'].load_state_dict(controller_state)
        self.__dict__.update(state)
