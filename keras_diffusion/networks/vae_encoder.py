import keras

from keras_diffusion.layers import Downsample


@keras.saving.register_keras_serializable(package="keras_diffusion")
class VAEEncoder(keras.Model):
    """Convolutional encoder: image -> mean and log-variance of a spatial latent.

    `Conv3x3`, then per extra level `Downsample -> Conv3x3`, with swish
    activations, then two 1x1 convolutions for the mean and the
    log-variance. Each `Downsample` halves height and width, so 28x28 images
    with `widths=(32, 64, 64)` give a 7x7 latent.

    Args:
        image_shape: tuple `(height, width, channels)`.
        latent_channels: int, channels of the latent.
        widths: tuple of ints, channels per level (the first is the stem).
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        images: tensor `(batch, height, width, channels)` in [-1, 1].

    Returns a dict with `"mean"` and `"log_variance"`, each of shape
    `(batch, latent_height, latent_width, latent_channels)`.

    Example:
    >>> encoder = VAEEncoder(latent_channels=4, widths=(32, 64, 64))
    >>> encoder(keras.random.normal((2, 28, 28, 1)))["mean"].shape
    (2, 7, 7, 4)
    """

    def __init__(self, image_shape=(28, 28, 1), latent_channels=4,
                 widths=(32, 64, 64), **kwargs):
        image_shape, widths = tuple(image_shape), tuple(widths)
        images = keras.Input(image_shape, name="images")
        x = keras.layers.Conv2D(widths[0], 3, padding="same", activation="silu",
                                name="stem")(images)
        for level, width in enumerate(widths[1:]):
            x = Downsample(width, name=f"down{level}")(x)
            x = keras.layers.Conv2D(width, 3, padding="same", activation="silu",
                                    name=f"conv{level}")(keras.ops.silu(x))
        mean = keras.layers.Conv2D(latent_channels, 1, name="mean")(x)
        log_variance = keras.layers.Conv2D(latent_channels, 1, name="log_variance")(x)
        super().__init__(inputs=images,
                         outputs={"mean": mean, "log_variance": log_variance},
                         **kwargs)
        self.image_shape = image_shape
        self.latent_channels = latent_channels
        self.widths = widths

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "image_shape": self.image_shape,
                "latent_channels": self.latent_channels, "widths": self.widths}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
