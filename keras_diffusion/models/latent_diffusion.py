import keras
import numpy as np
from keras import ops

from keras_diffusion.models.ddpm import DDPM
from keras_diffusion.models.vae import VAE


@keras.saving.register_keras_serializable(package="keras_diffusion")
class LatentDiffusion(DDPM):
    """DDPM on the latents of a frozen VAE (Rombach et al., 2022).

    Training encodes each batch with the VAE (posterior mean), multiplies by
    `latent_scale` so the latents have about unit variance, and trains the
    DDPM noise prediction on them; `generate` denoises latents with the same
    samplers (without clipping) and decodes them. The VAE is stored inside
    the model, so one `.keras` file samples images.

    Args:
        network: a `UNet` whose `image_shape` is the VAE's latent shape.
        vae: a trained `VAE`; it is frozen.
        latent_scale: float, multiplies the latents; compute it with
            `LatentDiffusion.compute_latent_scale(vae, images)`.
        schedule, seed, cond_drop_prob: as for `DDPM`.
        **kwargs: standard `keras.Model` arguments.

    Example:
    >>> scale = LatentDiffusion.compute_latent_scale(vae, images)
    >>> model = LatentDiffusion(UNet((7, 7, 4), widths=(96,)), vae, scale)
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    >>> model.fit(images, epochs=10)                # images in [-1, 1]
    >>> digits = model.generate(16, sampler="ddim", num_steps=50)
    """

    clip_sample = False

    def __init__(self, network, vae, latent_scale=1.0, schedule="linear", seed=None,
                 cond_drop_prob=0.1, **kwargs):
        super().__init__(network, schedule=schedule, seed=seed,
                         cond_drop_prob=cond_drop_prob, **kwargs)
        if tuple(vae.latent_shape) != self.image_shape:
            raise ValueError(
                f"The network denoises {self.image_shape} but the VAE's latents "
                f"are {tuple(vae.latent_shape)}; build the UNet with "
                f"image_shape={tuple(vae.latent_shape)}."
            )
        if not latent_scale > 0:
            raise ValueError(f"`latent_scale` must be > 0. Got {latent_scale}")
        self.vae = vae
        self.vae.trainable = False
        self.latent_scale = float(latent_scale)

    @staticmethod
    def compute_latent_scale(vae, images, batch_size=500):
        """`1 / std` of the VAE's latent means over `images` (in [-1, 1])."""
        latents = [
            ops.convert_to_numpy(vae.encode(images[start : start + batch_size]))
            for start in range(0, len(images), batch_size)
        ]
        return float(1.0 / np.std(np.concatenate(latents)))

    def encode_images(self, images):
        return self.vae.encode(images) * self.latent_scale

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        if isinstance(x, (tuple, list)):
            x = (self.encode_images(x[0]),) + tuple(x[1:])
        else:
            x = self.encode_images(x)
        return super().compute_loss(x, y, y_pred, sample_weight, training)

    def to_images(self, samples, batch_size=500):
        decoded = [
            ops.convert_to_numpy(
                self.vae.decode(samples[start : start + batch_size] / self.latent_scale)
            )
            for start in range(0, len(samples), batch_size)
        ]
        return np.clip((np.concatenate(decoded) + 1.0) / 2.0, 0.0, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update({
            "vae": keras.saving.serialize_keras_object(self.vae),
            "latent_scale": self.latent_scale,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["vae"] = keras.saving.deserialize_keras_object(config["vae"])
        return super().from_config(config)
