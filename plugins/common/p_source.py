"""Where a method's probability comes from, shared by the methods that read one (ANDA's alpha, APA's p)."""

P_SOURCES = ('auto', 'ada', 'heuristic')


def resolve_p_source(source, ada_target):
    """'auto' is 'ada' (the augment pipe's p) when the run adapts that p (train.py's `ada_target` is set), else
    'heuristic' (the loss's overfitting heuristic); 'ada' and 'heuristic' are kept."""
    return source if source != 'auto' else ('ada' if ada_target is not None else 'heuristic')


def require_pipe_p(option, augment_pipe, ada_target, at_one):
    """Refuse a run without an augment pipe holding p when `option` ('ANDA alpha', ...) follows that p, and one
    whose p is fixed (no `ada_target`) at 1 or more, where the method would do `at_one` throughout."""
    if getattr(augment_pipe, 'p', None) is None:
        raise ValueError(f"{option}='ada' follows the augment pipe's p, but this run has no augment pipe; "
                         f"use --aug ada (or fixed, or a pipe class) or {option.split()[-1]}='heuristic'")
    if ada_target is None and float(augment_pipe.p) >= 1:
        raise ValueError(f"{option}='ada' follows the augment pipe's p, which this run fixes at "
                         f"{float(augment_pipe.p):g} (no --target): {at_one}; give --target (ADA adapts p), a --p "
                         f"below 1, or {option.split()[-1]}='heuristic'")


def describe_pipe_p(augment_pipe, ada_target):
    """How the augment pipe's p moves in this run, for a method's line at start."""
    if ada_target is not None:
        return f"the augment pipe's p (ADA, target {ada_target:g})"
    return f"the augment pipe's p, fixed at {float(augment_pipe.p):g} (no --target)"
