"""Straightness: how far a flow's sampling paths are from straight lines."""

import keras
import numpy as np

from keras_diffusion.guidance import Conditioning
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.samplers import EulerSampler
from keras_diffusion.utils.checks import check_int


def straightness(model, noise, num_steps=16, labels=None, guidance=None,
                 batch_size=256, compile=True):
    """How far a flow's Euler paths are from straight lines.

    Integrates `model` from `noise` with `num_steps` Euler steps and
    returns the mean, over the steps, the samples and the dimensions, of
    `(v(x_t, t) - (x_1 - x_0)) ** 2`, where `x_1 - x_0` is the straight line
    from each path's start to its end. It is 0 for straight paths (the
    paper's S(Z), per dimension and discretized); reflow lowers it.

    Args:
        model: a `RectifiedFlow` (or `LatentRectifiedFlow`).
        noise: float array `(N,) + model.image_shape`, the paths' starts.
        num_steps: int >= 1, Euler steps.
        labels, guidance: as for `RectifiedFlow.generate`.
        batch_size: int >= 1, paths integrated at once.
        compile: bool, compile the velocity evaluation.

    Returns:
        float >= 0.

    Example:
    >>> noise = np.random.default_rng(0).standard_normal((256, 28, 28, 1))
    >>> straightness(flow1, noise), straightness(flow2, noise)
    """
    if not isinstance(model, RectifiedFlow):
        raise ValueError(
            "`straightness` measures a RectifiedFlow (or LatentRectifiedFlow); "
            f"got a {type(model).__name__}."
        )
    batch_size = check_int("batch_size", batch_size)
    noise = np.asarray(noise, "float32")
    if noise.shape[1:] != model.image_shape or len(noise) == 0:
        raise ValueError(
            f"`noise` must have shape (N,) + {model.image_shape} with N >= 1. "
            f"Got {noise.shape}"
        )
    conditioning = Conditioning.resolve(model, len(noise), labels, guidance)
    sampler = EulerSampler(num_steps)
    step_fn = model.step_function(sampler, compile)
    total = 0.0
    for start in range(0, len(noise), batch_size):
        samples = noise[start : start + batch_size]
        context = conditioning.context(start, start + batch_size)
        sum_v = np.zeros(samples.shape, "float64")
        sum_v2 = np.zeros(samples.shape, "float64")
        for t, t_next in sampler.timesteps():
            output = step_fn(keras.ops.convert_to_tensor(samples), _float(t),
                             _float(t_next), None, context)
            velocity = keras.ops.convert_to_numpy(output.model_output)
            velocity = velocity.astype("float64")
            samples = (samples + (t_next - t) * velocity).astype("float32")
            sum_v += velocity
            sum_v2 += velocity**2
        # With equal steps x_1 - x_0 is the mean velocity, and the mean over
        # steps of (v_k - mean)^2 is mean(v_k^2) - mean^2.
        mean_v = sum_v / sampler.num_steps
        deviation = np.maximum(sum_v2 / sampler.num_steps - mean_v**2, 0.0)
        total += float(deviation.sum())
    return total / noise.size


def _float(value):
    return keras.ops.convert_to_tensor(np.float32(value))
