"""Option validation shared by every plugin: each check raises ValueError naming the option, the bad value and
what would have been accepted, and returns the value so checks can be written inline."""

import math
import numbers


def check_type(name, value, types):
    """Require `isinstance(value, types)`; bool is refused where only int (or another number type) is asked for."""
    types = types if isinstance(types, tuple) else (types,)
    bool_refused = isinstance(value, bool) and bool not in types
    if bool_refused or not isinstance(value, types):
        expected = ' or '.join(t.__name__ for t in types)
        raise ValueError(f'{name} must be of type {expected}, got {value!r} of type {type(value).__name__}')
    return value


def check_range(name, value, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """Require a finite real number within the interval from `low` to `high` (None: unbounded on that side, but
    never infinite: JSON's Infinity and 1e400 are refused too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f'{name} must be a finite real number, got {value!r}')
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = '-inf' if low is None else f'{low}'
        right = 'inf' if high is None else f'{high}'
        interval = f'{"[" if low_inclusive and low is not None else "("}{left}, {right}' \
                   f'{"]" if high_inclusive and high is not None else ")"}'
        raise ValueError(f'{name} must lie in {interval}, got {value!r}')
    return value


def check_choice(name, value, choices):
    """Require `value` to be one of `choices`."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {", ".join(repr(c) for c in choices)}; got {value!r}')
    return value


def check_int_range(name, value, low=None, high=None):
    """Require an integer (Python or NumPy, not bool) within the closed interval [low, high] (None: unbounded on
    that side); returns it as a Python int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f'{name} must be an integer, got {value!r} of type {type(value).__name__}')
    return int(check_range(name, value, low, high))
