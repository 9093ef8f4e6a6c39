"""Where a method's probability comes from, shared by the methods that read one (ANDA's alpha, APA's p)."""

P_SOURCES = ('auto', 'ada', 'heuristic')


def resolve_p_source(source, ada_target):
    """'auto' is 'ada' (the augment pipe's p) when the run adapts that p (train.py's `ada_target` is set), else
    'heuristic' (the loss's overfitting heuristic); 'ada' and 'heuristic' are kept."""
    return source if source != 'auto' else ('ada' if ada_target is not None else 'heuristic')


def require_pipe_p(option, augment_pipe):
    """Refuse a run without an augment pipe holding p when `option` ('ANDA alpha', ...) follows that p."""
    if getattr(augment_pipe, 'p', None) is None:
        raise ValueError(f"{option}='ada' follows the augment pipe's p, but this run has no augment pipe; "
                         f"use --aug ada (or fixed, or a pipe class) or {option.split()[-1]}='heuristic'")
