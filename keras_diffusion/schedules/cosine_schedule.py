import math

import keras
import numpy as np

from keras_diffusion.schedules.noise_schedule import NoiseSchedule


@keras.saving.register_keras_serializable(package="keras_diffusion")
class CosineSchedule(NoiseSchedule):
    """The cosine schedule of Nichol & Dhariwal (2021).

    `alpha_bar(t) = f(t) / f(0)` with `f(t) = cos((t / T + s) / (1 + s) * pi/2)
    ** 2`; betas are clipped at `max_beta` to avoid a singularity at `t = T`.

    Args:
        num_timesteps: int, T.
        offset: float, `s`, keeps beta small near `t = 0`.
        max_beta: float, the largest beta.

    Example:
    >>> schedule = CosineSchedule()
    >>> bool(schedule.alphas_cumprod[0] > 0.99)
    True
    """

    def __init__(self, num_timesteps=1000, offset=0.008, max_beta=0.999):
        super().__init__(num_timesteps)
        self.offset = offset
        self.max_beta = max_beta
        steps = np.arange(self.num_timesteps + 1, dtype="float64")
        f = np.cos(
            (steps / self.num_timesteps + offset) / (1 + offset) * math.pi / 2
        ) ** 2
        alphas_cumprod = f / f[0]
        betas = 1.0 - alphas_cumprod[1:] / alphas_cumprod[:-1]
        self.betas = np.clip(betas, 0.0, max_beta)

    def get_config(self):
        config = super().get_config()
        config.update({"offset": self.offset, "max_beta": self.max_beta})
        return config
