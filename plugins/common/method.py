"""The method protocol of the combined loss (`plugins.Loss`): a method implements only the hooks it needs, each
documented at its `def` below. The loss calls them in the registry's order (`plugins.methods.METHODS`), for every
method that is on (`attach`, `attach_discriminator`, `describe` and the state) or on and `active` (the rest).
Upstream's terms and regularisers stay the loss's own."""

import inspect

RUN_FACTS = ('random_seed', 'training_set_size', 'ada_target', 'batch_size', 'xflip', 'G_opt_kwargs', 'D_opt_kwargs',
             'G_reg_interval', 'D_reg_interval')  # what train.py tells a loss about the run (patches 0013, 0026)

EXCLUSIVE_HOOKS = {  # hooks that one method at most implements, and what they set
    'g_main_loss': "G's main loss",
    'd_fake_inputs': "the images of D's fake term",
    'd_real_inputs': "the images of D's real term",
    'd_gradient_term': "a term from D's input gradients",
}


class Method:
    """Base of a method: every hook is a no-op that the loss skips unless a subclass overrides it."""

    name = None  # the --loss-kwargs key
    stats_prefix = None  # training_stats prefix of its quantities
    reports_score_gap = False  # report mean D(x) - mean D(G(z)) as '<stats_prefix>/score_gap'
    input_grad_wrt = None  # with d_gradient_term: 'before' or 'after' the augment pipe
    per_process_state = False  # its state differs between processes: saved and restored per process (patch 0030)
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

    def attach(self, augment_pipe):
        """At construction: check that the run's augment pipe (None without one) gives what the method needs (raise
        ValueError) and keep what it reads (e.g. the pipe's p)."""

    def describe(self):
        """A line printed at the start of training (after `attach`), or None."""
        return None

    def attach_discriminator(self, D):
        """At construction, after `attach`: keep what the method reads from D (as the loss has it: DDP-wrapped with
        several processes) or copies of it; raise ValueError when D lacks what it needs."""

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

    def g_main_loss(self, gen_logits, round_index):
        """G's main loss of the chunk (`round_index` of the minibatch's rounds), to be multiplied by the loop's gain,
        in place of upstream's mean(softplus(-D(G(z)))). One method at most."""
        raise NotImplementedError

    def g_main_terms(self, gen_img, gen_c):
        """A per-image term added to G's main loss before its mean."""
        raise NotImplementedError

    def d_fake_inputs(self, gen_img, real_img, p):
        """The batches D's fake term sees in D main, as [(images, weight or None, is_negative or None)]; `p` is the
        heuristic's p (a tensor) when `reads_p` says 'heuristic', else None. One method at most."""
        raise NotImplementedError

    def generated_logits(self, batches, logits):
        """The generated images' logits among those of `d_fake_inputs`'s batches (default: the first batch's)."""
        return logits[0]

    def d_real_inputs(self, real_img, p):
        """The images D's real term (and R1) sees; `p` as for `d_fake_inputs`. One method at most."""
        raise NotImplementedError

    def runs_in(self, phase):
        """Whether `d_gradient_term` is added in this phase ('Dmain', 'Dreg', 'Dboth')."""
        return False

    def d_gradient_term(self, real_norms, fake_norms):
        """A scalar term from per-image gradient norms of D's logits with respect to its inputs (`input_grad_wrt`:
        'before' or 'after' the augment pipe), added to the one D backward of each phase it `runs_in`. One method at
        most."""
        raise NotImplementedError

    def d_logit_terms(self, real_logits, gen_logits):
        """A scalar term on D's logits, added to D main's backward."""
        raise NotImplementedError

    def d_main_terms(self, real_img, real_c, gen_img, gen_z, gen_c, run_G):
        """After D's real pass in D main: a list of per-image terms from further passes (e.g. through D's features),
        added in order to each image's D main loss before its mean."""
        raise NotImplementedError

    def after_d_main_backward(self):
        """After D main's backward (e.g. a step of the method's own optimizers)."""

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
