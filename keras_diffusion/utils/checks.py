"""Argument checks with helpful `ValueError`s."""

import math
import numbers


def check_int(name, value, minimum=1):
    """Returns `value` as an int; raises `ValueError` unless it is an
    integer (not a bool) of at least `minimum`."""
    try:
        valid = (not isinstance(value, bool) and int(value) == value
                 and value >= minimum)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Got {value!r}")
    return int(value)


def check_choice(name, value, choices):
    """Returns `value`; raises `ValueError` unless it is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(choices)}. "
                         f"Got {value!r}")
    return value


# Seeds of `numpy.random.default_rng` and Keras' seed generators.
MAX_SEED = 2**32 - 1


def check_positive(name, value):
    """Returns `value` as a float; raises `ValueError` unless it is a finite
    number (not a bool) > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite number > 0. Got {value!r}")
    return float(value)


def check_share(name, value):
    """Returns `value` as a float; raises `ValueError` unless it is a number
    (not a bool) in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            0.0 <= value <= 1.0):
        raise ValueError(f"`{name}` must be a number in [0, 1]. Got {value!r}")
    return float(value)


def check_seed(seed):
    """Returns `seed` as an int; raises `ValueError` unless it is in 0 to
    `MAX_SEED`."""
    try:
        valid = not isinstance(seed, bool) and int(seed) == seed
    except (TypeError, ValueError):
        valid = False
    if not valid or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"`seed` must be an integer in 0 to {MAX_SEED}. Got {seed!r}")
    return int(seed)
