import numpy as np

from keras_diffusion.samplers.sampler_output import SamplerOutput

from keras_diffusion.utils.checks import check_int
from keras_diffusion.utils.checks import check_positive


class EulerSampler:
    """Euler steps of a flow's ODE `dx/dt = v(x, t)`, from noise to data.

    Time runs from `t = 0` (standard normal noise) to `t = 1` (data) in
    `num_steps` steps; each step is
    `x_{t_next} = x_t + (t_next - t) * v(x_t, t)`, one network evaluation.
    It is exact in one step for a straight (constant along each path)
    velocity field, which is what reflow aims at.

    The steps are equal for `shift=1`. A `shift > 1` makes them shorter near
    the noise and longer near the data, the timestep shift of Esser et al.
    (2024, eq. 23) written on the noise level `sigma = 1 - t`:
    `sigma_i = shift * s_i / (1 + (shift - 1) * s_i)` with `s_i = 1 - i / N`
    equal steps. Few-step samples gain from it
    (docs/rectified_flow.md#the-time-grid).

    | code              | paper (Liu et al., 2023; Esser et al., 2024) |
    | ----------------- | -------------------------------------------- |
    | `samples`         | Z_t                                          |
    | `model_fn(x, t)`  | v(Z_t, t)                                    |
    | `t_next - t`      | the step size (1 / N when `shift=1`)         |
    | `shift`           | the timestep shift (SD3's `shift`)           |

    Args:
        num_steps: int >= 1, steps (and network evaluations).
        shift: float > 0, the timestep shift; 1 means equal steps.

    Example:
    >>> EulerSampler(num_steps=4).timesteps()
    [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    >>> EulerSampler(num_steps=2, shift=3.0).timesteps()
    [(0.0, 0.25), (0.25, 1.0)]
    >>> x = EulerSampler(4).step(velocity_fn, noise, 0.0, 0.25).samples
    """

    needs_noise = False
    default_num_steps = 16

    def __init__(self, num_steps=None, shift=1.0):
        if num_steps is None:
            num_steps = self.default_num_steps
        self.num_steps = check_int("num_steps", num_steps)
        self.shift = check_positive("shift", shift)

    def timesteps(self):
        """`(t, t_next)` float pairs from 0 (noise) to 1 (data)."""
        noise_levels = 1.0 - np.linspace(0.0, 1.0, self.num_steps + 1)
        noise_levels = self.shift * noise_levels / (
            1.0 + (self.shift - 1.0) * noise_levels)
        edges = 1.0 - noise_levels
        return [(float(t), float(t_next)) for t, t_next in zip(edges[:-1], edges[1:])]

    def step(self, model_fn, samples, t, t_next, noise=None):
        """One Euler step: x_t -> x_{t_next}.

        Args:
            model_fn: callable `(samples, t) -> velocity`.
            samples: the current samples x_t.
            t, t_next: scalar float times (a pair from `timesteps()`).
            noise: unused (the sampler is deterministic).

        Returns:
            A `SamplerOutput`: x_{t_next}, the data estimate
            `x_t + (1 - t) * v` and the velocity `v`.
        """
        velocity = model_fn(samples, t)
        return SamplerOutput(samples + (t_next - t) * velocity,
                             self.predict_images(samples, velocity, t), velocity)

    def predict_images(self, samples, velocity, t):
        """The data end of the straight line through `x_t` with velocity
        `v(x_t, t)`: `x_t + (1 - t) * v` (what one Euler step to `t = 1`
        would give; shown in sampling trajectories).
        """
        return samples + (1.0 - t) * velocity
