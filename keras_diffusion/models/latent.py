import keras
import numpy as np
from keras import ops

from keras_diffusion.utils.checks import check_positive


class LatentMixin:
    """Runs a `GenerativeModel` on the latents of a frozen VAE.

    Mixed in before the pixel model (`class LatentDiffusion(LatentMixin,
    DDPM)`), it adds a `vae` and a `latent_scale` to the model: training
    encodes each batch of images with the VAE (posterior mean) and multiplies
    by `latent_scale` so the latents have about unit variance; sampling runs
    the same samplers on latents (without clipping) and `to_images` decodes
    them. The VAE is stored inside the model, so one `.keras` file samples
    images.

    A batch given as a dict (the `{"noise", "images"}` pairs of reflow
    training) is already in the scaled latent space and is not encoded.

    Args:
        network: a network whose `image_shape` is the VAE's latent shape.
        vae: a trained `VAE`; it is frozen.
        latent_scale: float > 0, multiplies the latents; compute it with
            `compute_latent_scale(vae, images)`.
        *args, **kwargs: the pixel model's other arguments.
    """

    clip_sample = False

    def __init__(self, network, vae, latent_scale=1.0, *args, **kwargs):
        super().__init__(network, *args, **kwargs)
        if tuple(vae.latent_shape) != self.image_shape:
            raise ValueError(
                f"The network works on {self.image_shape} but the VAE's latents "
                f"are {tuple(vae.latent_shape)}; build the UNet with "
                f"image_shape={tuple(vae.latent_shape)}."
            )
        latent_scale = check_positive("latent_scale", latent_scale)
        self.vae = vae
        self.vae.trainable = False
        # A VAE rebuilt from a config (loading a .keras file) does not pass
        # `trainable` down to the layers inside its functional encoder and
        # decoder; freeze every variable so the optimizer never sees them.
        for variable in self.vae.weights:
            variable.trainable = False
        self.latent_scale = latent_scale

    @staticmethod
    def compute_latent_scale(vae, images, batch_size=500):
        """`1 / std` of the VAE's latent means over `images` (in [-1, 1])."""
        latents = [
            ops.convert_to_numpy(vae.encode(images[start : start + batch_size]))
            for start in range(0, len(images), batch_size)
        ]
        return float(1.0 / np.std(np.concatenate(latents)))

    def encode_images(self, images):
        """Images in [-1, 1] -> scaled latents (the model's space)."""
        return self.vae.encode(images) * self.latent_scale

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        if isinstance(x, dict):
            pass  # reflow pairs: already scaled latents
        elif isinstance(x, (tuple, list)):
            x = (self.encode_images(x[0]),) + tuple(x[1:])
        else:
            x = self.encode_images(x)
        return super().compute_loss(x, y, y_pred, sample_weight, training)

    @property
    def output_image_shape(self):
        """The decoded images' `(height, width, channels)`."""
        return tuple(self.vae.decoder.output.shape[1:])

    def to_images(self, samples, batch_size=500):
        """Scaled latents -> decoded images in [0, 1] (NumPy)."""
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
