"""Argument checks with helpful `ValueError`s."""


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
