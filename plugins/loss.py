"""One upstream loss for any combination of the registered methods (`plugins.methods.METHODS`):

    --loss plugins.Loss --loss-kwargs '{"atopk": {"mode": "adaptive"}, "anda": {}, "diggan": {"weight": 100}}'

Each method's package has a preset of it with that method alone on (`plugins.methods.preset(name)`, e.g.
`plugins.atopk.Loss`).
Needs upstream's `training` and `torch_utils` packages on sys.path (train.py puts them there)."""

import types

import torch
import torch.distributed
from torch_utils import misc, training_stats
from torch_utils.ops import conv2d_gradfix
from training.loss import StyleGAN2Loss

from plugins.common.contexts import DFake, DTerms, GMain, Run
from plugins.common.method import ROLES, RUN_FACTS, implements, run_facts_for
from plugins.common.grad_norms import per_sample_grad_norms
from plugins.common.minibatch import G_MAIN_PHASES, MinibatchTracker
from plugins.common.options import check_int_range, check_range, check_type
from plugins.common.overfit import HEURISTIC_DEFAULTS, OverfitHeuristic
from plugins.common.pipe_output import join_pipe_output, split_pipe_output
from plugins.methods import METHODS, method_class

UPSTREAM_OPTIONS = ('style_mixing_prob', 'r1_gamma', 'pl_batch_shrink', 'pl_decay', 'pl_weight')
_D_MAIN_PHASES = ('Dmain', 'Dboth')


def _rank_and_world_size():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _method_spec(name, spec):
    """A method's options from its --loss-kwargs entry: None or false: off; true: defaults; an object: options."""
    if spec is None or spec is False:
        return None
    if spec is True:
        return {}
    if not isinstance(spec, dict):
        raise ValueError(f'{name} must be an object of {name} options, true (defaults) or false/null (off); '
                         f'got {spec!r}')
    return dict(spec)


def _split_options(name, method_class, options, facts):
    """(method options with defaults filled, heuristic options with defaults or None) for one method; unknown
    names are errors."""
    defaults = method_class.option_defaults()
    may_adapt = implements(method_class, 'reads_p')
    heuristic = dict(HEURISTIC_DEFAULTS)
    method_options = dict(defaults)
    for key, value in options.items():
        if key in defaults:
            method_options[key] = value
        elif key in HEURISTIC_DEFAULTS and may_adapt:
            heuristic[key] = value
        else:
            valid = list(defaults) + (list(HEURISTIC_DEFAULTS) if may_adapt else [])
            raise ValueError(f'{name}: unknown option {key!r}; valid options: {", ".join(valid)}')
    method_class.check_options(**method_options)
    p_source = method_class.reads_p(method_options, facts)
    given = sorted(set(options) & set(HEURISTIC_DEFAULTS))
    if given and p_source != 'heuristic':
        raise ValueError(f'{name}: {", ".join(given)} set the overfitting heuristic, which {name} does not use '
                         f'with these options' + (f' ({p_source})' if p_source else ''))
    if p_source != 'heuristic':
        return method_options, None
    check_range(f'{name}.target', heuristic['target'], 0, 1)
    check_range(f'{name}.speed_kimg', heuristic['speed_kimg'], 0, low_inclusive=False)
    check_int_range(f'{name}.interval', heuristic['interval'], 1)
    return method_options, heuristic


def _options_text(options):
    return ', '.join(f'{key}={value!r}' for key, value in options.items())


def _parse_methods(specs, shared_heuristic, facts):
    """{name: (class, method options, heuristic options or None)} for the methods that are on, in the registry's
    order, validated."""
    check_type('shared_heuristic', shared_heuristic, bool)
    unknown = sorted(set(specs) - set(METHODS))
    if unknown:
        raise ValueError(f'{unknown[0]!r} is neither a method ({", ".join(METHODS)}) nor an option of the loss '
                         f'(shared_heuristic, {", ".join(UPSTREAM_OPTIONS)})')
    parsed = {}
    for name in METHODS:
        options = _method_spec(name, specs.get(name))
        if options is not None:
            cls = method_class(name)
            parsed[name] = (cls, *_split_options(name, cls, options, facts))
    settings = {name: heuristic for name, (_, _, heuristic) in parsed.items() if heuristic is not None}
    if shared_heuristic and len({tuple(sorted(h.items())) for h in settings.values()}) > 1:
        raise ValueError(f'the methods share one overfitting heuristic, but their settings differ: {settings}; give '
                         f'them the same target/speed_kimg/interval, or set "shared_heuristic": false')
    for role, words in ROLES.items():
        owners = [name for name, (cls, _, _) in parsed.items() if role in cls.sets]
        if len(owners) > 1:
            raise ValueError(f'{" and ".join(owners)} cannot be combined: each sets {words}')
    return parsed


class Loss(StyleGAN2Loss):
    """StyleGAN2's loss (upstream's terms and regularisers, unchanged) with any subset of the registered methods
    (`plugins.methods.METHODS`), each acting through the hooks of `plugins.common.method` that it implements (what
    each does: its class's docstring, in its package's `method.py`). Each is given as an object of its options,
    `true` for its defaults, or `false`/`null` (off, the default). With no method on, training is upstream's
    StyleGAN2Loss exactly (same numbers for the same seed).

    Shared overfitting heuristic: the methods that adapt (`reads_p` says 'heuristic' for their options) read one p
    (Eq. 10, ADA's r_t) per run: `target`, `speed_kimg` and `interval` go in any of their options and must agree.
    With "shared_heuristic": false each gets its own p from the same real logits. The heuristic is ADA's exactly:
    it sees every real logit reported as 'Loss/signs/real' (D main and R1 passes) on all ranks and moves p after
    every `interval`-th minibatch, where the training loop moves ADA's p (`after_minibatch`).

    Minibatches are learnt from the phase calls (plugins.common.minibatch.MinibatchTracker); upstream's
    style_mixing_prob, r1_gamma, pl_batch_shrink, pl_decay and pl_weight are taken as upstream takes them.
    `state_dict`/`load_state_dict` hold every method's state, the heuristics, the minibatch counters and pl_mean.
    train.py passes the facts about the run (`plugins.common.method.RUN_FACTS`: its seed, training-set size, ADA
    target and batch, `xflip` and the optimizers' settings; patch 0010), for the methods that take them.
    """

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, shared_heuristic=True,
                 style_mixing_prob=0.9, r1_gamma=10, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2, random_seed=0,
                 training_set_size=None, ada_target=None, batch_size=None, xflip=False, G_opt_kwargs=None,
                 D_opt_kwargs=None, G_reg_interval=4, D_reg_interval=16, **methods):
        facts = {name: value for name, value in locals().items() if name in RUN_FACTS}
        parsed = _parse_methods(methods, shared_heuristic, facts)
        super().__init__(device=device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                         style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma, pl_batch_shrink=pl_batch_shrink,
                         pl_decay=pl_decay, pl_weight=pl_weight)
        self.methods = {name: cls(**options, **run_facts_for(cls, facts))
                        for name, (cls, options, _) in parsed.items()}
        self.heuristics = {}  # method name -> OverfitHeuristic (one object for all when shared)
        for name, (_, _, settings) in parsed.items():
            if settings is not None:
                shared = next(iter(self.heuristics.values()), None) if shared_heuristic else None
                self.heuristics[name] = shared or OverfitHeuristic(**settings).to(device)
        self.p_host = {name: 0.0 for name in self.heuristics}  # each heuristic's p, read at its adjustments
        for name, method in self.methods.items():
            line = method.setup(Run(augment_pipe=augment_pipe, D=D))
            if _rank_and_world_size()[0] != 0:
                continue
            if not method.active:  # a neutral setting is allowed (an ablation), never silent
                given = _options_text(_method_spec(name, methods[name]))
                print(f'{name}: off with these options ({given}): the loss runs as without it')
            elif line is not None:
                print(line)
        self.tracker = MinibatchTracker()

    @staticmethod
    def check_options(shared_heuristic=True, augment_pipe=None, ada_target=None, batch_size=None,
                      training_set_size=None, xflip=False, augment_p=0, **options):
        """Validate the methods' options (upstream's own are left to upstream); raises ValueError. train.py also
        passes `augment_pipe`, whether the run will have one, and the facts `ada_target`, `batch_size`,
        `training_set_size`, `xflip` and `augment_p` (the pipe's p, fixed unless `ada_target`), for the options
        that need them."""
        facts = {name: value for name, value in locals().items() if name in RUN_FACTS}
        specs = {name: spec for name, spec in options.items() if name not in UPSTREAM_OPTIONS + RUN_FACTS}
        parsed = _parse_methods(specs, shared_heuristic, facts)
        pipe = types.SimpleNamespace(p=torch.tensor(float(augment_p))) if augment_pipe else None
        for cls, method_options, _ in parsed.values():  # built as training builds it: refusals that need the facts
            method = cls(**method_options, **run_facts_for(cls, facts))
            if augment_pipe is not None:  # a method that reads the run's pipe, or its p, refuses what it cannot use
                method.setup(Run(augment_pipe=pipe))

    def _on(self, hook):
        """The active methods that implement `hook`, in order."""
        return [method for method in self.methods.values() if method.active and implements(method, hook)]

    def _owner(self, role):
        """The active method that takes `role` (`Method.sets`), or None."""
        return next((method for method in self.methods.values() if method.active and role in method.sets), None)

    def _p(self, method):
        """The heuristic's p of a method that reads one, else None."""
        heuristic = self.heuristics.get(method.name)
        return None if heuristic is None else heuristic.p

    # ------------------------------------------------------------------------------------------------------------
    # Minibatches and the heuristic.

    def _begin_minibatch(self, rank, world_size):
        for method in self._on('begin_minibatch'):
            method.begin_minibatch(self.tracker, rank, world_size, self.p_host.get(method.name))

    def after_minibatch(self, batch_idx):
        """Called by the training loop (patch 0012) on every rank after each minibatch's phases, where it adjusts
        ADA's p; `batch_idx` counts the minibatches done. Moves each heuristic's p after every `interval`-th
        minibatch, as ADA moves its p."""
        adjusted = {}
        for name, heuristic in self.heuristics.items():
            if batch_idx % heuristic.interval == 0:
                if id(heuristic) not in adjusted:
                    p = heuristic.adjust(self.tracker.batch_size)
                    adjusted[id(heuristic)] = torch.stack([p.double(), heuristic.last_eta]).cpu().tolist()
                self.p_host[name], eta = adjusted[id(heuristic)]
                training_stats.report(f'{self.methods[name].stats_prefix}/eta', [eta] if eta == eta else [])

    def tick_stats(self):
        """What the training loop reports once per tick (patch 0014): the methods' `tick_stats`."""
        stats = {}
        for method in self._on('tick_stats'):
            stats.update(method.tick_stats(self.p_host.get(method.name)))
        return stats

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        assert phase in ['Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth']
        rank, world_size = _rank_and_world_size()
        ended, started, round_index = self.tracker.enter(phase, gen_z.shape[0], world_size)
        if ended:
            for method in self._on('end_minibatch'):
                method.end_minibatch(self.tracker)
        if started:
            self._begin_minibatch(rank, world_size)

        if phase in G_MAIN_PHASES:
            do_Gpl = phase == 'Gboth' and self.pl_weight != 0
            self._accumulate_g_main(real_img, gen_z, gen_c, sync=(sync and not do_Gpl), gain=gain, round_index=round_index)
            if do_Gpl:
                super().accumulate_gradients('Greg', real_img, real_c, gen_z, gen_c, sync, gain)
        elif phase == 'Greg':
            super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)
        else:
            self._accumulate_d(phase, real_img, real_c, gen_z, gen_c, sync, gain)

    # ------------------------------------------------------------------------------------------------------------
    # G.

    def _accumulate_g_main(self, real_img, gen_z, gen_c, sync, gain, round_index):
        with torch.autograd.profiler.record_function('Gmain_forward'):
            gen_img, _gen_ws = self.run_G(gen_z, gen_c, sync=sync)
            for method in self._on('observe_g_main'):
                method.observe_g_main(real_img, gen_img.detach())
            gen_logits = self.run_D(gen_img, gen_c, sync=False)
            training_stats.report('Loss/scores/fake', gen_logits)
            training_stats.report('Loss/signs/fake', gen_logits.sign())
            g = GMain(gen_img=gen_img, gen_c=gen_c, gen_logits=gen_logits, round_index=round_index)
            for method in self._on('g_main'):
                method.g_main(g)
            loss_Gmain = g.loss
            if loss_Gmain is None:
                loss_Gmain = torch.nn.functional.softplus(-gen_logits)  # -log(sigmoid(gen_logits))
                training_stats.report('Loss/G/loss', loss_Gmain)
            for term in g.terms:
                loss_Gmain = loss_Gmain + term  # per image, before the mean
            loss_Gmain = loss_Gmain.mean()
        with torch.autograd.profiler.record_function('Gmain_backward'):
            loss_Gmain.mul(gain).backward()

    # ------------------------------------------------------------------------------------------------------------
    # D.

    def _run_D_for_input_grads(self, img, c, sync, wrt):
        """D's logits of img, with the input whose gradient is wanted: 'before' the augment pipe (img itself, a new
        leaf), 'after' it (the pipe's output; a new leaf unless it already depends on a leaf that needs grad), or
        both (a list); `wrt` None wants none. Returns (logits, before, after)."""
        wrt = set([wrt] if isinstance(wrt, str) else wrt or [])
        before = img.detach().requires_grad_('before' in wrt)
        after = self.augment_pipe(before) if self.augment_pipe is not None else before
        after, timesteps = split_pipe_output(after)
        if 'after' in wrt and not after.requires_grad:
            after = after.detach().requires_grad_(True)
        with misc.ddp_sync(self.D, sync):
            logits = self.D(join_pipe_output(after, timesteps), c)
        return logits, before, after

    def _input_grads(self, logits, inputs):
        with torch.autograd.profiler.record_function('input_grads'), conv2d_gradfix.no_weight_gradients():
            return torch.autograd.grad(outputs=[logits.sum()], inputs=inputs, create_graph=True, only_inputs=True)

    def _d_fake_term(self, real_img, gen_z, gen_c, grad_wrt):
        """D's fake term of a D main phase: (per-image loss, generated images, their logits, the input-gradient norms
        `grad_wrt` ('before'/'after' the pipe, or None for none) of the first batch D sees, the generated one)."""
        faker = self._owner('d_fake_term')
        gen_img, _gen_ws = self.run_G(gen_z, gen_c, sync=False)
        fake_norms = []

        def logits(images):
            if grad_wrt is not None and not fake_norms:
                images_logits, norms = self._fake_norms(images, gen_c, grad_wrt)
                fake_norms.append(norms)
                return images_logits
            return self.run_D(images, gen_c, sync=False)  # gets synced by the real pass

        if faker is None:
            gen_logits = logits(gen_img)
            loss_Dgen = torch.nn.functional.softplus(gen_logits)  # -log(1 - sigmoid(logits))
        else:
            loss_Dgen, gen_logits = faker.d_fake_term(DFake(gen_img=gen_img, real_img=real_img, p=self._p(faker),
                                                            logits=logits))
        training_stats.report('Loss/scores/fake', gen_logits)
        training_stats.report('Loss/signs/fake', gen_logits.sign())
        return loss_Dgen, gen_img, gen_logits, (fake_norms or [None])[0]

    def _fake_norms(self, images, c, wrt):
        """(D's logits of images, per-image input-gradient norms `wrt` the pipe), the images detached from G."""
        logits, before, after = self._run_D_for_input_grads(images, c, sync=False, wrt=wrt)
        with torch.autograd.profiler.record_function('input_grads'), conv2d_gradfix.no_weight_gradients():
            return logits, per_sample_grad_norms(logits, before if wrt == 'before' else after)

    def _accumulate_d(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        do_Dmain = phase in _D_MAIN_PHASES
        do_Dr1 = phase in ('Dreg', 'Dboth') and self.r1_gamma != 0
        readers = {method: method.d_terms_in(phase) for method in self._on('d_terms')}
        readers = {method: reads for method, reads in readers.items() if reads is not None}
        grad_wrt = next((reads.input_grads for reads in readers.values() if reads.input_grads is not None), None)
        joint = any(reads.joint for reads in readers.values())  # the fake term's graph waits for the real pass

        # Dmain: minimize logits for generated images (and a method's negatives). A method whose term needs the fake
        # and real passes together keeps the fake term's graph for one backward with the real pass.
        loss_Dgen, gen_img, gen_logits, fake_norms = 0, None, None, None
        if do_Dmain:
            with torch.autograd.profiler.record_function('Dgen_forward'):
                loss_Dgen, gen_img, gen_logits, fake_norms = self._d_fake_term(real_img, gen_z, gen_c, grad_wrt)
            if not joint:
                with torch.autograd.profiler.record_function('Dgen_backward'):
                    loss_Dgen.mean().mul(gain).backward()
        elif grad_wrt is not None:  # input gradients outside D main (a lazy cadence): one more D pass on fakes
            with torch.autograd.profiler.record_function('Dgap_fake_forward'):
                gen_img, _gen_ws = self.run_G(gen_z, gen_c, sync=False)
                _logits, fake_norms = self._fake_norms(gen_img, gen_c, grad_wrt)

        # Dmain: maximize logits for real images. Dr1: R1. Input-gradient norms share R1's input gradient.
        if do_Dmain or do_Dr1 or readers:
            name = 'Dreal_Dr1' if do_Dmain and do_Dr1 else 'Dreal' if do_Dmain else 'Dr1'
            with torch.autograd.profiler.record_function(name + '_forward'):
                realer = self._owner('d_real_inputs')
                if realer is not None:
                    real_img = realer.d_real_inputs(real_img, self._p(realer))
                wrt = (['before'] if do_Dr1 else []) + ([grad_wrt] if grad_wrt is not None else [])
                real_logits, before, after = self._run_D_for_input_grads(real_img, real_c, sync=sync, wrt=wrt)
                training_stats.report('Loss/scores/real', real_logits)
                training_stats.report('Loss/signs/real', real_logits.sign())
                for heuristic in {id(h): h for h in self.heuristics.values()}.values():  # ADA counts every report
                    heuristic.accumulate(real_logits)

                loss_Dreal = 0
                if do_Dmain:
                    gap_reporters = [m.stats_prefix for m in self.methods.values() if m.reports_score_gap]
                    if gap_reporters and gen_logits.numel() > 0:
                        gap = real_logits.detach().mean() - gen_logits.detach().mean()
                        for prefix in gap_reporters:
                            training_stats.report(f'{prefix}/score_gap', gap)
                    loss_Dreal = torch.nn.functional.softplus(-real_logits)  # -log(sigmoid(real_logits))
                    training_stats.report('Loss/D/loss', loss_Dgen + loss_Dreal)

                inputs = sorted(set(wrt), reverse=True)  # 'before' first
                grads = dict(zip(inputs, self._input_grads(real_logits, [before if i == 'before' else after
                                                                          for i in inputs]))) if inputs else {}
                loss_Dr1 = 0
                if do_Dr1:
                    r1_penalty = grads['before'].square().sum([1, 2, 3])
                    loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
                    training_stats.report('Loss/r1_penalty', r1_penalty)
                    training_stats.report('Loss/D/reg', loss_Dr1)

                d = DTerms(phase=phase, real_img=real_img, real_c=real_c, real_logits=real_logits, gen_img=gen_img,
                           gen_z=gen_z, gen_c=gen_c, gen_logits=gen_logits, run_G=self.run_G, fake_norms=fake_norms,
                           real_norms=None if grad_wrt is None else grads[grad_wrt].flatten(1).norm(dim=1))
                for method in readers:
                    method.d_terms(d)
                for term in d.real_terms:
                    loss_Dreal = loss_Dreal + term  # per image, before the mean

            with torch.autograd.profiler.record_function(name + '_backward'):
                total = (real_logits * 0 + loss_Dreal + loss_Dr1).mean()
                if joint or d.terms:
                    total = total + sum(d.terms) + (loss_Dgen.mean() if do_Dmain and joint else 0)
                total.mul(gain).backward()
            for call in d.after_backward_calls:
                call()

    # ------------------------------------------------------------------------------------------------------------
    # State.

    def state_dict(self):
        """Everything that adapts during training (not the networks), as copies, for exact resume; the training
        loop saves it in every snapshot, copied to the CPU (patch 0017)."""
        return {
            'methods': {name: method.state_dict() for name, method in self.methods.items()},
            'heuristics': {name: {k: v.clone() for k, v in h.state_dict().items()} for name, h in self.heuristics.items()},
            'p_host': dict(self.p_host),
            'tracker': self.tracker.state_dict(),
            'pl_mean': self.pl_mean.detach().clone(),
        }

    def per_process_state_dict(self):
        """What each process holds for itself, saved per process (patch 0017): pl_mean and the methods' with
        `per_process_state`."""
        return {'pl_mean': self.pl_mean.detach().clone(),
                'methods': {name: method.state_dict() for name, method in self.methods.items() if method.per_process_state}}

    def load_per_process_state_dict(self, state):
        self.pl_mean.copy_(state['pl_mean'])
        for name, method_state in state['methods'].items():
            self.methods[name].load_state_dict(method_state)

    def load_state_dict(self, state):
        """Restore `state_dict()` of a loss with the same methods on; raises ValueError otherwise."""
        if sorted(state['methods']) != sorted(self.methods) or sorted(state['heuristics']) != sorted(self.heuristics):
            raise ValueError(f'the saved loss state holds methods {sorted(state["methods"])}, this loss has '
                             f'{sorted(self.methods)}')
        for name, method in self.methods.items():
            method.load_state_dict(state['methods'][name])
        for name, heuristic in self.heuristics.items():
            heuristic.load_state_dict(state['heuristics'][name])
        self.p_host = dict(state['p_host'])
        self.tracker.load_state_dict(state['tracker'])
        self.pl_mean.copy_(state['pl_mean'])
