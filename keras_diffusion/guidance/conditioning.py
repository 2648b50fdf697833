"""The defaults of guided sampling, and the class labels of a batch.

`kd sample`, `kd evaluate`, the FID callback and `kd export` take their
defaults from here; `keras_diffusion.app.sample.resolve_conditioning`
checks a request against them once.
"""

import numpy as np

# Classifier-free guidance weight when a class-conditional model is sampled
# without one (docs/guidance.md sweeps 0-8).
DEFAULT_GUIDANCE = 4.0
# Classifier guidance scale (docs/classifier_guidance.md has the sweep).
DEFAULT_CLASSIFIER_SCALE = 5.0
# Classifier guidance steers far better with stochastic steps than with
# deterministic ones (the fresh noise corrects what the gradient pushes off
# the digits); SDE-DPM-Solver++ in 10 steps does about as well as DDPM in 50
# in a fifth of the time (docs/classifier_guidance.md).
CLASSIFIER_SAMPLER = "dpm-sde"
CLASSIFIER_STEPS = 10
# Images per class of a grid of every class.
PER_CLASS_DEFAULT = 8


def class_rows(num_classes, num_images=None):
    """`(labels, num_columns)` to sample every class, sorted by class.

    `num_images` exactly (default `PER_CLASS_DEFAULT` per class), as evenly
    shared as it divides; `num_columns` puts one class per grid row when
    every class has as many images, else it is `None` (the default grid).
    """
    if num_images is None:
        num_images = PER_CLASS_DEFAULT * num_classes
    labels = np.sort(np.arange(int(num_images)) % num_classes)
    even = num_images % num_classes == 0
    return labels, (num_images // num_classes if even else None)


def cycled_labels(num_classes, num_images, start=0):
    """The classes in turn, `0, 1, ..., num_classes - 1, 0, ...`, for images
    `start` to `start + num_images` (equal counts when it divides)."""
    return (np.arange(start, start + int(num_images)) % num_classes).astype("int32")


def classifier_sampler(sampler=None, num_steps=None):
    """`(sampler, num_steps)` for classifier guidance: `CLASSIFIER_SAMPLER`
    with `CLASSIFIER_STEPS` unless a sampler is given (then its own default
    step count)."""
    if sampler is None:
        return CLASSIFIER_SAMPLER, CLASSIFIER_STEPS if num_steps is None else num_steps
    return sampler, num_steps
