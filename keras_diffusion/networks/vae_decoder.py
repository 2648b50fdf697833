import keras

from keras_diffusion.layers import Upsample


@keras.saving.register_keras_serializable(package="keras_diffusion")
class VAEDecoder(keras.Model):
    """Transposed-conv decoder: spatial latent -> per-pixel logits.

    `Conv3x3`, then per extra level `Upsample (transposed conv) -> Conv3x3`,
    with swish activations, then a 3x3 convolution to the image channels.
    It outputs logits: `sigmoid(logits)` is the image in [0, 1].

    Args:
        latent_shape: tuple `(height, width, latent_channels)`.
        image_channels: int.
        widths: tuple of ints, channels per level from the latent upward.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        latents: tensor `(batch, height, width, latent_channels)`.

    Example:
    >>> decoder = VAEDecoder((7, 7, 4), widths=(64, 64, 32))
    >>> decoder(keras.random.normal((2, 7, 7, 4))).shape
    (2, 28, 28, 1)
    """

    def __init__(self, latent_shape=(7, 7, 4), image_channels=1,
                 widths=(64, 64, 32), **kwargs):
        latent_shape, widths = tuple(latent_shape), tuple(widths)
        latents = keras.Input(latent_shape, name="latents")
        x = keras.layers.Conv2D(widths[0], 3, padding="same", activation="silu",
                                name="stem")(latents)
        for level, width in enumerate(widths[1:]):
            x = Upsample(width, name=f"up{level}")(x)
            x = keras.layers.Conv2D(width, 3, padding="same", activation="silu",
                                    name=f"conv{level}")(keras.ops.silu(x))
        logits = keras.layers.Conv2D(image_channels, 3, padding="same",
                                     name="logits")(x)
        super().__init__(inputs=latents, outputs=logits, **kwargs)
        self.latent_shape = latent_shape
        self.image_channels = image_channels
        self.widths = widths

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "latent_shape": self.latent_shape,
                "image_channels": self.image_channels, "widths": self.widths}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
