"""The method protocol of the combined loss (`plugins.Loss`): what a method declares, and the hooks it may override,
each documented at its `def` below with the context object it is handed (`plugins.common.contexts`). The loss
calls a hook in the registry's order (`plugins.methods.METHODS`) for every method that is on (`setup` and the
state) or on and `active` (the rest), and skips a method that does not override it. Upstream's terms and
regularisers stay the loss's own."""

import inspect

RUN_FACTS = ('random_seed', 'training_set_size', 'ada_target', 'batch_size', 'xflip', 'G_opt_kwargs', 'D_opt_kwargs',
             'G_reg_interval', 'D_reg_interval')  # what train.py tells a loss about the run (patch 0010)

ROLES = {  # what one method at most may set (`Method.sets`), and how the refusal words it
    'g_main_loss': "G's main loss",
    'd_fake_term': "D's fake term",
    'd_real_inputs': "the images of D's real term",
    'input_grad_term': "a term from D's input gradients",
}


class Method:
    """Base of a method: every hook is a no-op that the loss skips unless a subclass overrides it, but for the two
    it calls on the method that `sets` their role (`d_fake_term`, `d_real_inputs`)."""

    name = None  # the --loss-kwargs key
    stats_prefix = None  # training_stats prefix of its quantities
    sets = ()  # the ROLES it takes, which no other method that is on may take
    reports_score_gap = False  # report mean D(x) - mean D(G(z)) as '<stats_prefix>/score_gap'
    per_process_state = False  # its state differs between processes: saved and restored per process (patch 0017)
    aug = 'ada'  # train.py's --aug of its papers' runs: the README's and the studies' command for it

    @classmethod
    def option_defaults(cls):
        """{option: default}: a method's options are its constructor's keyword parameters, less the RUN_FACTS it
        takes (those come from train.py, never from --loss-kwargs)."""
        return {name: parameter.default for name, parameter in inspect.signature(cls).parameters.items()
                if name not in RUN_FACTS}

    @staticmethod
    def check_options(**options):
        """Validate every option (`option_defaults()` with the given ones over it); raise ValueError naming the bad
        value and what is allowed."""

    @classmethod
    def reads_p(cls, options, facts):
        """Where the method's p comes from with these options (every one, defaults filled) and run facts:
        'heuristic' (the loss's overfitting heuristic, Eq. 10, whose target/speed_kimg/interval are then options of
        the method), or else a clause saying what p is instead ("alpha is ADA's p"), for the refusal of those
        options. A method that does not override this reads no p and never takes them."""
        return None

    @property
    def active(self):
        """False for the method's neutral setting: the loss then runs as if it were off."""
        return True

    def setup(self, run):
        """At construction (`run`: plugins.common.contexts.Run), and, for a run with an augment pipe, when train.py
        checks the options before building anything (`run.D` None then): check that the run's augment pipe and D
        give what the method needs (raise ValueError naming what is missing) and keep what it reads. Returns a line
        printed at the start of training, or None."""
        return None

    def begin_minibatch(self, tracker, rank, world_size, p_host):
        """At a minibatch's first G main call (the heuristics have moved after the minibatches before, as ADA's p):
        `tracker` (plugins.common.minibatch.MinibatchTracker) has counted it; `p_host` is the heuristic's p as a
        float when `reads_p` says 'heuristic', else None."""

    def end_minibatch(self, tracker):
        """Once the minibatch's G rounds are counted (at the next minibatch's first call)."""

    def tick_stats(self, p_host):
        """{name: value} the training loop reports once per tick (e.g. the figures the released code reports there)."""
        return {}

    def observe_g_main(self, real_img, gen_img):
        """Each G main chunk's real images and generated images (detached), after G's forward and before D's."""

    def g_main(self, g):
        """G's main loss of a chunk (`g`: plugins.common.contexts.GMain, after D's pass on the generated images):
        `g.replace_loss(scalar)` (with 'g_main_loss' in `sets`) and/or `g.add(per-image term)`."""

    def d_fake_term(self, fake):
        """D main's fake term (with 'd_fake_term' in `sets`; `fake`: plugins.common.contexts.DFake): (the per-image
        loss, D's logits of the generated images among the batches it shows D through `fake.logits`)."""
        raise NotImplementedError

    def d_real_inputs(self, real_img, p):
        """The images D's real term (and R1) sees (with 'd_real_inputs' in `sets`); `p` is the heuristic's p (a
        tensor) when `reads_p` says 'heuristic', else None."""
        raise NotImplementedError

    def d_terms_in(self, phase):
        """What `d_terms` reads in a D phase ('Dmain', 'Dreg', 'Dboth'), as plugins.common.contexts.DReads, or None
        where it adds nothing; declared before the phase's passes, which it shapes. At most one method asks for
        input gradients (with 'input_grad_term' in `sets`)."""
        return None

    def d_terms(self, d):
        """A D phase's terms, after its real pass (`d`: plugins.common.contexts.DTerms): `d.add(scalar)` to the
        phase's backward, `d.add_to_real_term(term)` before the real term's mean, `d.after_backward(call)`."""

    def state_dict(self):
        """Everything the method adapts, as copies, for exact resume."""
        return {}

    def load_state_dict(self, state):
        """Restore `state_dict()`."""


def run_facts_for(cls, facts):
    """The entries of `facts` (RUN_FACTS by name) that a method's or a loss's constructor takes."""
    return {name: value for name, value in facts.items() if name in inspect.signature(cls).parameters}


def implements(method, hook):
    """Whether a method (instance or class) overrides `hook` of Method."""
    def function(cls):
        attribute = getattr(cls, hook)
        return getattr(attribute, '__func__', attribute)  # a classmethod is bound anew at each access
    return function(method if isinstance(method, type) else type(method)) is not function(Method)
