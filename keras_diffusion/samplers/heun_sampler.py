from keras import ops

from keras_diffusion.samplers.euler_sampler import EulerSampler
from keras_diffusion.samplers.sampler_output import SamplerOutput


class HeunSampler(EulerSampler):
    """Heun's method (explicit trapezoid, 2nd order) for a flow's ODE.

    Each step takes an Euler guess, evaluates the velocity again at its end,
    and moves with the mean of the two velocities:

        guess = x_t + h * v(x_t, t)
        x_{t_next} = x_t + h / 2 * (v(x_t, t) + v(guess, t_next))

    with `h = t_next - t`; time runs from 0 (noise) to 1 (data) on
    `EulerSampler`'s grid (equal steps, or shifted toward the noise by
    `shift`). The last step, to `t = 1`, is the Euler guess alone, as in
    Karras et al. (2022, Algorithm 1: no correction where sigma reaches 0):
    a network trained with logit-normal t has almost never seen `t = 1`,
    and its velocity there spoils the samples
    (docs/rectified_flow.md#heun-and-the-last-step). `num_steps` steps
    cost `2 * num_steps - 1` network evaluations; the default 8 steps,
    15. The method stays second order overall (one first-order step adds
    an O(h^2) error).

    Args:
        num_steps: int >= 1, steps.
        shift: float > 0, the time grid's shift (see `EulerSampler`).

    Example:
    >>> sampler = HeunSampler(num_steps=4)
    >>> x = sampler.step(velocity_fn, noise, 0.0, 0.25).samples
    """

    default_num_steps = 8

    def step(self, model_fn, samples, t, t_next, noise=None):
        """One Heun step: x_t -> x_{t_next}, the Euler guess alone if
        `t_next` is 1 (see the class docstring).

        Returns a `SamplerOutput` whose data estimate and velocity are the
        step's first evaluation's, as `EulerSampler.step`'s.
        """
        step_size = t_next - t
        velocity = model_fn(samples, t)
        guess = samples + step_size * velocity

        def corrected():
            return samples + (0.5 * step_size) * (
                velocity + model_fn(guess, t_next))

        next_samples = ops.cond(ops.less(t_next, 1.0), corrected, lambda: guess)
        return SamplerOutput(next_samples, self.predict_images(samples, velocity, t),
                             velocity)
