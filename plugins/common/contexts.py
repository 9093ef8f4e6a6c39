"""What the combined loss (`plugins.Loss`) hands a method's hooks (`plugins.common.method.Method`): one object per
hook, so that a hook takes what it reads by name and the protocol grows by fields, not by hooks."""

import dataclasses
from typing import Any, Callable, Optional


@dataclasses.dataclass
class Run:
    """The run, for `Method.setup`."""
    augment_pipe: Any  # the run's augment pipe (None without one); at the options check, a stand-in holding its p
    D: Any = None  # D as the loss has it (DDP-wrapped with several processes); None at the options check


@dataclasses.dataclass
class GMain:
    """One G main chunk, for `Method.g_main`: its generated images, labels and D's logits of them."""
    gen_img: Any
    gen_c: Any
    gen_logits: Any
    round_index: int  # the chunk's round among the minibatch's G main rounds
    loss: Any = None  # set by `replace_loss`
    terms: list = dataclasses.field(default_factory=list)

    def replace_loss(self, loss):
        """G's main loss of the chunk in place of upstream's mean(softplus(-D(G(z)))), to be multiplied by the
        loop's gain (a method that `sets` 'g_main_loss')."""
        self.loss = loss

    def add(self, term):
        """A per-image term added to G's main loss before its mean."""
        self.terms.append(term)


@dataclasses.dataclass
class DFake:
    """D main's fake term, for `Method.d_fake_term`."""
    gen_img: Any
    real_img: Any  # the chunk's reals, before the augment pipe
    p: Any  # the heuristic's p (a tensor) when the method's `reads_p` says 'heuristic', else None
    logits: Callable  # logits(images): D's logits of images through the augment pipe (input gradients as needed)


@dataclasses.dataclass(frozen=True)
class DReads:
    """What a method's `d_terms` reads in a D phase, declared by `Method.d_terms_in` before the phase's passes."""
    logits: bool = False  # the fake term's logits: its graph waits for one backward with the real pass
    input_grads: Optional[str] = None  # per-image norms of D's input gradients 'before' or 'after' the augment pipe

    @property
    def joint(self):
        return self.logits or self.input_grads is not None


@dataclasses.dataclass
class DTerms:
    """A D phase after its real pass, for `Method.d_terms`."""
    phase: str  # 'Dmain', 'Dreg' or 'Dboth'
    real_img: Any  # the images of D's real term, before the augment pipe
    real_c: Any
    real_logits: Any
    gen_img: Any  # D main's generated images (None outside D main)
    gen_z: Any
    gen_c: Any
    gen_logits: Any  # D main's logits of the generated images (None outside D main)
    run_G: Callable  # run_G(z, c, sync): the loss's G, for passes of the method's own
    real_norms: Any = None  # per-image input-gradient norms, for the method whose `DReads` asks for them
    fake_norms: Any = None
    terms: list = dataclasses.field(default_factory=list)
    real_terms: list = dataclasses.field(default_factory=list)
    after_backward_calls: list = dataclasses.field(default_factory=list)

    def add(self, term):
        """A scalar term added to the phase's D backward."""
        self.terms.append(term)

    def add_to_real_term(self, term):
        """A term added to each image's loss of D's real term before its mean (as InsGen's released code adds)."""
        self.real_terms.append(term)

    def after_backward(self, call):
        """call() once the phase's backward is done (e.g. a step of the method's own optimizers)."""
        self.after_backward_calls.append(call)
