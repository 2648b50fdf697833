import numpy as np
from keras import ops

from keras_diffusion.samplers.sampler_output import SamplerOutput
from keras_diffusion.schedules import as_schedule
from keras_diffusion.utils.checks import check_positive


class DDPMSampler:
    """Ancestral sampling of DDPM (Ho et al., 2020, Algorithm 2).

    Each step predicts the clean image from the predicted noise, then draws
    `x_{t_prev}` from the Gaussian posterior `q(x_{t_prev} | x_t, x_0)`. With
    `num_steps < T` the same posterior is taken between strided timesteps
    (`beta_t` becomes `1 - alpha_bar_t / alpha_bar_prev`).

    | code                 | paper                                      |
    | -------------------- | ------------------------------------------ |
    | `samples`            | x_t                                        |
    | `pred_noises`        | epsilon_theta(x_t, t) * pred_noise_scale   |
    | `pred_images`        | x_0 estimate                               |
    | `alpha_bars`         | alpha_bar_t (`alpha_bars_prev`: at t_prev) |
    | `step_betas`         | beta_t (between t_prev and t)              |
    | `posterior_mean`     | mu_tilde_t(x_t, x_0), eq. 7                |
    | `posterior_variance` | beta_tilde_t, eq. 7                        |

    `pred_noise_scale` multiplies every noise prediction before it is used,
    as the epsilon scaling of Ning et al. (2024) does (`epsilon_theta /
    lambda`, `pred_noise_scale = 1 / lambda`). They scale the prediction
    down against exposure bias; above 1, each step removes a little more
    noise than predicted, which sharpens the x_0 estimates. 1 leaves the
    predictions as they are.

    The per-step coefficients are computed once in float64 (as tables indexed
    by `t`, since `t_prev` follows from `t`), so that small betas near `t = 0`
    lose no precision in float32.

    Args:
        schedule: a `NoiseSchedule` (or its name).
        num_steps: int, denoising steps, at most T; `None` means T.
        clip_sample: bool, clip the predicted clean image to [-1, 1]
            (right for pixels, wrong for latents).
        pred_noise_scale: float > 0, multiplies each noise prediction.
    """

    needs_noise = True

    def __init__(self, schedule="linear", num_steps=None, clip_sample=True,
                 pred_noise_scale=1.0):
        self.pred_noise_scale = check_positive("pred_noise_scale", pred_noise_scale)
        self.schedule = as_schedule(schedule)
        total = self.schedule.num_timesteps
        self.num_steps = total if num_steps is None else int(num_steps)
        if not 1 <= self.num_steps <= total:
            raise ValueError(
                f"This sampler takes 1 to {total} steps (the schedule's "
                f"length). Got {num_steps}"
            )
        self.clip_sample = clip_sample
        self._tables = self._make_tables()

    def timesteps(self):
        """`(t, t_prev)` pairs from noisy to clean; `t_prev = -1` is x_0."""
        total = self.schedule.num_timesteps
        timesteps = np.linspace(total - 1, 0, self.num_steps).round().astype("int32")
        timesteps_prev = np.append(timesteps[1:], -1).astype("int32")
        return list(zip(timesteps, timesteps_prev))

    def _make_tables(self):
        """float64 per-step coefficients, as float32 tables indexed by t."""
        alpha_bars_all = np.concatenate([[1.0], self.schedule.alphas_cumprod])
        names = ("alpha_bars", "alpha_bars_prev", "coef_images", "coef_samples",
                 "posterior_variance")
        tables = {name: np.ones(self.schedule.num_timesteps) for name in names}
        for t, t_prev in self.timesteps():
            alpha_bar, alpha_bar_prev = alpha_bars_all[t + 1], alpha_bars_all[t_prev + 1]
            step_beta = 1.0 - alpha_bar / alpha_bar_prev
            tables["alpha_bars"][t] = alpha_bar
            tables["alpha_bars_prev"][t] = alpha_bar_prev
            tables["coef_images"][t] = np.sqrt(alpha_bar_prev) * step_beta / (1 - alpha_bar)
            tables["coef_samples"][t] = (
                np.sqrt(1 - step_beta) * (1 - alpha_bar_prev) / (1 - alpha_bar)
            )
            tables["posterior_variance"][t] = (
                step_beta * (1 - alpha_bar_prev) / (1 - alpha_bar)
            )
        return {name: table.astype("float32") for name, table in tables.items()}

    def lookup(self, name, t):
        """The coefficient `name` of the step that starts at timestep `t`."""
        return ops.take(ops.convert_to_tensor(self._tables[name]), ops.cast(t, "int32"))

    def predict_noises(self, model_fn, samples, t):
        """The network's noise prediction at `t`, times `pred_noise_scale`."""
        pred_noises = model_fn(samples, t)
        if self.pred_noise_scale != 1.0:
            pred_noises = pred_noises * self.pred_noise_scale
        return pred_noises

    def predict_images(self, samples, pred_noises, t):
        """x_0 from x_t and the predicted noise, clipped if `clip_sample`."""
        alpha_bars = self.lookup("alpha_bars", t)
        pred_images = (samples - ops.sqrt(1.0 - alpha_bars) * pred_noises) / ops.sqrt(
            alpha_bars
        )
        if self.clip_sample:
            pred_images = ops.clip(pred_images, -1.0, 1.0)
        return pred_images

    def posterior_mean_variance(self, pred_images, samples, t):
        """Mean and variance of q(x_{t_prev} | x_t, x_0 = pred_images)."""
        posterior_mean = (
            self.lookup("coef_images", t) * pred_images
            + self.lookup("coef_samples", t) * samples
        )
        return posterior_mean, self.lookup("posterior_variance", t)

    def step(self, model_fn, samples, t, t_prev, noise):
        """One denoising step: x_t -> x_{t_prev}.

        Args:
            model_fn: callable `(samples, t) -> pred_noises`.
            samples: the current noisy samples x_t.
            t, t_prev: scalar int timesteps (a pair from `timesteps()`).
            noise: standard normal noise shaped like `samples`.

        Returns:
            A `SamplerOutput`: x_{t_prev}, the x_0 estimate and the
            predicted noise.
        """
        pred_noises = self.predict_noises(model_fn, samples, t)
        pred_images = self.predict_images(samples, pred_noises, t)
        mean, variance = self.posterior_mean_variance(pred_images, samples, t)
        return SamplerOutput(mean + ops.sqrt(variance) * noise, pred_images,
                             pred_noises)
