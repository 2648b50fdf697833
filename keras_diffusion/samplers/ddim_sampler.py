import numpy as np
from keras import ops

from keras_diffusion.samplers.ddpm_sampler import DDPMSampler
from keras_diffusion.samplers.sampler_output import SamplerOutput


class DDIMSampler(DDPMSampler):
    """DDIM sampling (Song et al., 2021, eq. 12) with any number of steps.

    `x_prev = sqrt(alpha_bar_prev) * pred_images
    + sqrt(1 - alpha_bar_prev - sigma^2) * pred_noises + sigma * noise`,
    with `sigma = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t))
    * sqrt(1 - alpha_bar_t / alpha_bar_prev)`. `eta = 0` is deterministic;
    `eta = 1` is DDPM's posterior.

    Args:
        schedule: a `NoiseSchedule` (or its name).
        num_steps: int, denoising steps, 1 to T.
        eta: float >= 0, the share of fresh noise per step.
        clip_sample: bool, clip the predicted clean image to [-1, 1].
        pred_noise_scale: float > 0, multiplies each noise prediction
            (`DDPMSampler`'s epsilon scaling).
    """

    def __init__(self, schedule="linear", num_steps=50, eta=0.0, clip_sample=True,
                 pred_noise_scale=1.0):
        if eta < 0:
            raise ValueError(f"`eta` must be >= 0. Got eta={eta}")
        self.eta = float(eta)
        self.needs_noise = self.eta > 0
        super().__init__(schedule, num_steps, clip_sample, pred_noise_scale)

    def _make_tables(self):
        tables = super()._make_tables()
        alpha_bars = tables["alpha_bars"].astype("float64")
        alpha_bars_prev = tables["alpha_bars_prev"].astype("float64")
        sigmas = self._sigmas(alpha_bars, alpha_bars_prev)
        tables["sigmas"] = sigmas.astype("float32")
        tables["direction"] = np.sqrt(
            np.maximum(1 - alpha_bars_prev - sigmas**2, 0.0)
        ).astype("float32")
        return tables

    def _sigmas(self, alpha_bars, alpha_bars_prev):
        """Each timestep's fresh-noise scale (float64, indexed by `t`)."""
        # Unused timesteps hold alpha_bar = 1; their entries are never read.
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nan_to_num(
                self.eta
                * np.sqrt((1 - alpha_bars_prev) / (1 - alpha_bars))
                * np.sqrt(np.maximum(1 - alpha_bars / alpha_bars_prev, 0.0))
            )

    def step(self, model_fn, samples, t, t_prev, noise=None):
        pred_noises = self.predict_noises(model_fn, samples, t)
        pred_images = self.predict_images(samples, pred_noises, t)
        directions = pred_noises
        if self.clip_sample:
            # Keep the noise direction consistent with the clipped image.
            alpha_bars = self.lookup("alpha_bars", t)
            directions = (samples - ops.sqrt(alpha_bars) * pred_images) / ops.sqrt(
                1.0 - alpha_bars
            )
        next_samples = (
            ops.sqrt(self.lookup("alpha_bars_prev", t)) * pred_images
            + self.lookup("direction", t) * directions
        )
        if self.needs_noise:
            next_samples = next_samples + self.lookup("sigmas", t) * noise
        return SamplerOutput(next_samples, pred_images, pred_noises)
