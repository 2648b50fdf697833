"""The accepted ranges of the guidance weights, checked in one place."""

import math

# Classifier-free guidance weight w: 0 is unconditional, 1 the plain
# conditional prediction. Far above the useful range (docs/guidance.md
# sweeps 0-8) the samples are pure noise, so larger weights are refused.
MAX_GUIDANCE = 20.0
# Classifier guidance scale s: 0 is unguided (docs/classifier_guidance.md
# sweeps 0-20).
MAX_CLASSIFIER_SCALE = 100.0


def check_guidance(guidance):
    """Returns `guidance` as a float; raises `ValueError` unless it is a
    number from 0 to `MAX_GUIDANCE`. `None` (the default weight) passes."""
    return _check_range("guidance", guidance, MAX_GUIDANCE)


def check_classifier_scale(classifier_scale):
    """Returns `classifier_scale` as a float; raises `ValueError` unless it
    is a number from 0 to `MAX_CLASSIFIER_SCALE`. `None` passes."""
    return _check_range("classifier_scale", classifier_scale, MAX_CLASSIFIER_SCALE)


def _check_range(name, value, maximum):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number. Got {value!r}") from None
    if not (0 <= value <= maximum and math.isfinite(value)):  # refuses NaN
        raise ValueError(
            f"`{name}` must be >= 0 and <= {maximum:g} (finite). Got {value}"
        )
    return value
