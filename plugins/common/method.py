"""The method protocol of the combined loss (`plugins.Loss`): a method implements only the hooks it needs.

The loss calls, in the registry's order (`plugins.methods.METHODS`), for every method that is on (`attach`,
`describe` and the state) or on and `active` (the rest):
  at construction   `attach(augment_pipe)`, `attach_discriminator(D)` (D as the loss has it: DDP-wrapped with
                    several processes), then prints `describe()` if it says something;
  each minibatch    `begin_minibatch(tracker, rank, world_size, p_host)` at its first G main call (the
                    heuristics move after the minibatches before, as ADA's p), `end_minibatch(tracker)` once its G
                    rounds are counted;
  each tick         `tick_stats(p_host)`: {name: value} the training loop reports once per tick (e.g. the
                    figures the released code reports there);
  G main            `g_main_loss(gen_logits, round_index)`: G's main loss of the chunk, in place of upstream's
                    mean(softplus(-D(G(z)))). One method at most. `g_main_terms(gen_img, gen_c)`: a term added to it.
  D main, fakes     `d_fake_inputs(gen_img, real_img, p)`: the batches D's fake term sees, as
                    [(images, weight or None, is_negative or None)]; `generated_logits(batches, logits)` then picks
                    the generated images' logits for the stats. One method at most.
  D, reals          `d_real_inputs(real_img, p)`: the images D's real term (and R1) sees. One method at most.
  D, input grads    `runs_in(phase)` and `input_grad_wrt` ('before'/'after' the augment pipe): the method adds
                    `d_gradient_term(real_norms, fake_norms)`, from per-image gradient norms of D's logits with
                    respect to its inputs, to that phase's one D backward. One method at most.
  D main, logits    `d_logit_terms(real_logits, gen_logits)`: a term on D's logits, added to D main's backward.
  D main, extra     `d_main_terms(real_img, real_c, gen_img, gen_z, gen_c, run_G)`, after D's real pass: a list
                    of scalar terms from further passes (e.g. through D's features), added in order to each image's
                    D main loss before its mean;
                    `after_d_main_backward()` then runs after that backward (e.g. a step of the method's own
                    optimizers).
  G main, images    `observe_g_main(real_img, gen_img)`: each G main chunk's real images and generated images
                    (detached), after G's forward and before D's.
  state             `state_dict()` / `load_state_dict(state)` for exact resume.
`p` is the method's overfitting-heuristic p (a tensor) when `reads_p` says 'heuristic', else None; a method that
reads the augment pipe's p keeps the pipe from `attach`. Upstream's terms and regularisers stay the loss's own."""

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
        """Check that the run gives what the method needs (raise ValueError) and keep what it reads."""

    def describe(self):
        """A line printed at the start of training, or None."""
        return None

    def attach_discriminator(self, D):
        """Keep what the method reads from D or copies of it; raise ValueError when D lacks what it needs."""

    def begin_minibatch(self, tracker, rank, world_size, p_host):
        pass

    def end_minibatch(self, tracker):
        pass

    def tick_stats(self, p_host):
        return {}

    def observe_g_main(self, real_img, gen_img):
        pass

    def g_main_loss(self, gen_logits, round_index):
        raise NotImplementedError

    def g_main_terms(self, gen_img, gen_c):
        raise NotImplementedError

    def d_fake_inputs(self, gen_img, real_img, p):
        raise NotImplementedError

    def generated_logits(self, batches, logits):
        """The generated images' logits among those of `d_fake_inputs`'s batches (default: the first batch's)."""
        return logits[0]

    def d_real_inputs(self, real_img, p):
        raise NotImplementedError

    def runs_in(self, phase):
        return False

    def d_gradient_term(self, real_norms, fake_norms):
        raise NotImplementedError

    def d_logit_terms(self, real_logits, gen_logits):
        raise NotImplementedError

    def d_main_terms(self, real_img, real_c, gen_img, gen_z, gen_c, run_G):
        raise NotImplementedError

    def after_d_main_backward(self):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def run_facts_for(cls, facts):
    """The entries of `facts` (RUN_FACTS by name) that a method's or a loss's constructor takes."""
    return {name: value for name, value in facts.items() if name in inspect.signature(cls).parameters}


def implements(method, hook):
    """Whether a method (instance or class) overrides `hook` of Method."""
    def function(cls):
        attribute = getattr(cls, hook)
        return getattr(attribute, '__func__', attribute)  # a classmethod is bound anew at each access
    return function(method if isinstance(method, type) else type(method)) is not function(Method)
