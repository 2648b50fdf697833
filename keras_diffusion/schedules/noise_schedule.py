import keras
import numpy as np
from keras import ops

from keras_diffusion.utils.replicas import draw_for_global_batch


class NoiseSchedule:
    """Base class of discrete noise schedules over `num_timesteps` steps.

    The forward process of DDPM adds Gaussian noise in `T` steps; in closed
    form `x_t = signal_rate(t) * x_0 + noise_rate(t) * noise`. Names in code
    and in the DDPM paper (Ho et al., 2020):

    | code                 | paper                 |
    | -------------------- | --------------------- |
    | `num_timesteps`      | T                     |
    | `betas[t]`           | beta_t                |
    | `alphas[t]`          | alpha_t = 1 - beta_t  |
    | `alphas_cumprod[t]`  | alpha_bar_t           |
    | `signal_rates(t)`    | sqrt(alpha_bar_t)     |
    | `noise_rates(t)`     | sqrt(1 - alpha_bar_t) |

    Timesteps are integers `0 .. T - 1`; `t = 0` is the first noising step.
    Subclasses set `self.betas` (a float64 NumPy array of length T).
    """

    def __init__(self, num_timesteps):
        if int(num_timesteps) < 1:
            raise ValueError(
                f"`num_timesteps` must be a positive int. Got {num_timesteps}"
            )
        self.num_timesteps = int(num_timesteps)
        self.betas = None

    @property
    def alphas(self):
        return 1.0 - self.betas

    @property
    def alphas_cumprod(self):
        return np.cumprod(self.alphas)

    def alpha_bar(self, timesteps):
        """alpha_bar_t for integer timesteps; `t = -1` gives 1 (clean data)."""
        table = np.concatenate([[1.0], self.alphas_cumprod]).astype("float32")
        timesteps = ops.cast(timesteps, "int32") + 1
        return ops.take(ops.convert_to_tensor(table), timesteps)

    def snr(self, timesteps):
        """The signal-to-noise ratio `alpha_bar_t / (1 - alpha_bar_t)` of
        integer timesteps `0 .. T-1` (computed in float64, returned in
        float32)."""
        alphas_cumprod = self.alphas_cumprod
        table = (alphas_cumprod / (1.0 - alphas_cumprod)).astype("float32")
        return ops.take(ops.convert_to_tensor(table), ops.cast(timesteps, "int32"))

    def signal_rates(self, timesteps):
        return ops.sqrt(self.alpha_bar(timesteps))

    def noise_rates(self, timesteps):
        return ops.sqrt(1.0 - self.alpha_bar(timesteps))

    def add_noise(self, images, noises, timesteps):
        """Samples q(x_t | x_0): `signal_rate * images + noise_rate * noises`."""
        signal_rates = ops.reshape(self.signal_rates(timesteps), (-1, 1, 1, 1))
        noise_rates = ops.reshape(self.noise_rates(timesteps), (-1, 1, 1, 1))
        return signal_rates * images + noise_rates * noises

    def noisy_training_batch(self, images, seed):
        """Draws a timestep and a noise for each image of a training batch
        and noises the images with them.

        Both are drawn for the global batch under `tf.distribute` (see
        `utils.replicas.draw_for_global_batch`), so replicas never share
        noise; the timesteps first, then the noise.

        Args:
            images: float tensor `(batch, height, width, channels)`, x_0.
            seed: the model's `keras.random.SeedGenerator`.

        Returns:
            `(noisy_images, noises, timesteps)`: x_t, epsilon and t.
        """
        timesteps = draw_for_global_batch(
            keras.random.randint, (ops.shape(images)[0],), minval=0,
            maxval=self.num_timesteps, seed=seed,
        )
        noises = draw_for_global_batch(keras.random.normal, ops.shape(images),
                                       seed=seed)
        return self.add_noise(images, noises, timesteps), noises, timesteps

    def get_config(self):
        return {"num_timesteps": self.num_timesteps}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
