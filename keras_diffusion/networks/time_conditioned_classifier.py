import keras

from keras_diffusion.layers import Downsample
from keras_diffusion.layers import ResBlock
from keras_diffusion.layers import SinusoidalEmbedding
from keras_diffusion.layers.res_block import group_count


@keras.saving.register_keras_serializable(package="keras_diffusion")
class TimeConditionedClassifier(keras.Model):
    """A small CNN that classifies a noisy image `x_t` given its time.

    The time (a float in [0, 1]) is embedded as in `UNet` (sinusoids and a
    two-layer MLP) and enters every `ResBlock`. A 3x3 stem is followed, for
    each entry of `widths`, by one `ResBlock` and, between levels, a
    strided-conv `Downsample` (28 -> 14 -> 7 pixels with three levels); then
    `GroupNormalization -> swish -> Flatten -> Dense(num_classes)`.
    Flattening keeps where the strokes are; it learns far faster than
    global pooling here.

    It has no batch statistics (group normalization only), so each image's
    logits depend on that image alone: the gradient of a batch's summed
    log-probabilities is every image's own gradient, which classifier
    guidance needs (`keras_diffusion.guidance`).

    Args:
        image_shape: tuple `(height, width, channels)`; height and width must
            divide by `2 ** (len(widths) - 1)`.
        widths: tuple of ints, channels at each resolution level.
        embedding_dim: int, even size of the time embedding.
        num_classes: int, number of classes.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        inputs: dict with `"noisy_images"` of shape
            `(batch, height, width, channels)` and `"times"` of shape
            `(batch,)`, floats in [0, 1] (timestep / T).

    Returns:
        Logits of shape `(batch, num_classes)`.

    Example:
    >>> network = TimeConditionedClassifier(widths=(16, 32, 64))
    >>> logits = network({
    ...     "noisy_images": keras.random.normal((2, 28, 28, 1)),
    ...     "times": keras.ops.array([0.1, 0.9]),
    ... })
    >>> logits.shape
    (2, 10)
    """

    def __init__(self, image_shape=(28, 28, 1), widths=(16, 32, 64),
                 embedding_dim=64, num_classes=10, **kwargs):
        image_shape = tuple(image_shape)
        widths = tuple(int(width) for width in widths)
        _check_config(image_shape, widths, embedding_dim, num_classes)

        noisy_images = keras.Input(image_shape, name="noisy_images")
        times = keras.Input((), name="times")
        embedding = SinusoidalEmbedding(embedding_dim, name="time_sinusoids")(times)
        embedding = keras.layers.Dense(
            embedding_dim, activation="silu", name="time_mlp_1"
        )(embedding)
        embedding = keras.layers.Dense(embedding_dim, name="time_mlp_2")(embedding)

        x = keras.layers.Conv2D(widths[0], 3, padding="same", name="stem")(
            noisy_images
        )
        for level, width in enumerate(widths):
            x = ResBlock(width, name=f"level{level}_res")(x, embedding)
            if level < len(widths) - 1:
                x = Downsample(width, name=f"level{level}_downsample")(x)
        # Keras' layer, as the UNet's out_norm: the shipped weights' names.
        x = keras.layers.GroupNormalization(group_count(widths[-1]),
                                            name="out_norm")(x)
        x = keras.layers.Activation("silu", name="out_silu")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        logits = keras.layers.Dense(num_classes, name="logits")(x)

        super().__init__(inputs={"noisy_images": noisy_images, "times": times},
                         outputs=logits, **kwargs)
        self.image_shape = image_shape
        self.widths = widths
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": self.image_shape,
            "widths": self.widths,
            "embedding_dim": self.embedding_dim,
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_config(image_shape, widths, embedding_dim, num_classes):
    if len(image_shape) != 3:
        raise ValueError(
            f"`image_shape` must be (height, width, channels). Got {image_shape}"
        )
    if not widths or any(width <= 0 for width in widths):
        raise ValueError(f"`widths` must be positive ints. Got {widths}")
    factor = 2 ** (len(widths) - 1)
    if image_shape[0] % factor or image_shape[1] % factor:
        raise ValueError(
            f"Image size {image_shape[:2]} must divide by {factor} for "
            f"{len(widths)} levels; use fewer `widths`."
        )
    if embedding_dim <= 0 or embedding_dim % 2:
        raise ValueError(
            f"`embedding_dim` must be a positive even int. Got {embedding_dim}"
        )
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Got {num_classes}")
