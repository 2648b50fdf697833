from typing import Any
from typing import NamedTuple


class SamplerOutput(NamedTuple):
    """What a sampler's `step` returns, as diffusers' `SchedulerOutput`.

    A named tuple, so it passes through `tf.function`, `jax.jit` and
    PyTorch unchanged.

    | field          | DDPM, DDIM, DPM-Solver++           | Euler, Heun (flows)      |
    | -------------- | ---------------------------------- | ------------------------ |
    | `samples`      | x_{t_prev}, the next samples       | x_{t_next}               |
    | `pred_images`  | the x_0 estimate (clipped if `clip_sample`) | `x_t + (1 - t) * v` |
    | `model_output` | epsilon_theta(x_t, t), the network's noise | v(x_t, t), the velocity |

    `pred_images` and `model_output` come from the step's first network
    evaluation (Heun evaluates twice).

    Example:
    >>> output = sampler.step(model_fn, samples, t, t_prev, noise)
    >>> samples, x0_estimate = output.samples, output.pred_images
    """

    samples: Any
    pred_images: Any
    model_output: Any
