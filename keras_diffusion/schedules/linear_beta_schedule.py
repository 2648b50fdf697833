import keras
import numpy as np

from keras_diffusion.schedules.noise_schedule import NoiseSchedule


@keras.saving.register_keras_serializable(package="keras_diffusion")
class LinearBetaSchedule(NoiseSchedule):
    """The linear beta schedule of DDPM: `beta_t` rises linearly.

    Args:
        num_timesteps: int, T.
        beta_start: float, beta at the first step.
        beta_end: float, beta at the last step.

    Example:
    >>> schedule = LinearBetaSchedule()
    >>> round(float(schedule.alphas_cumprod[-1]), 6)
    4e-05
    """

    def __init__(self, num_timesteps=1000, beta_start=1e-4, beta_end=0.02):
        super().__init__(num_timesteps)
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                "Need 0 < beta_start <= beta_end < 1. "
                f"Got beta_start={beta_start}, beta_end={beta_end}"
            )
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.betas = np.linspace(beta_start, beta_end, self.num_timesteps)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_start": self.beta_start, "beta_end": self.beta_end})
        return config
