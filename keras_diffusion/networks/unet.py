import keras
from keras import ops

from keras_diffusion.layers import AttentionBlock
from keras_diffusion.layers import Downsample
from keras_diffusion.layers import ResBlock
from keras_diffusion.layers import SinusoidalEmbedding
from keras_diffusion.layers import Upsample
from keras_diffusion.layers.res_block import group_count


@keras.saving.register_keras_serializable(package="keras_diffusion")
class UNet(keras.Model):
    """A UNet that maps a noisy image and a time to an image-shaped output.

    The down path runs `blocks_per_level` `ResBlock`s at each width, followed
    by a strided-conv `Downsample` between levels; the middle is
    `ResBlock -> AttentionBlock -> ResBlock`; the up path mirrors the down path
    with one more `ResBlock` per level, each taking a skip connection from the
    down path, and a transposed-conv `Upsample` between levels. Levels listed
    in `attention_levels` get an `AttentionBlock` after each `ResBlock`. The
    time (a float in [0, 1]) enters every `ResBlock` through a sinusoidal
    embedding and a small MLP. The output convolution starts at zero.

    The network is used for noise prediction (DDPM), velocity prediction
    (rectified flow) and, with other heads, classification.

    Args:
        image_shape: tuple `(height, width, channels)`; height and width must
            divide by `2 ** (len(widths) - 1)`.
        widths: tuple of ints, channels at each resolution level.
        blocks_per_level: int, `ResBlock`s per level on the down path.
        attention_levels: tuple of level indices that get self-attention.
        embedding_dim: int, size of the time embedding.
        num_heads: int, heads of every attention block.
        dropout: float, dropout rate inside the `ResBlock`s.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        inputs: dict with `"noisy_images"` of shape
            `(batch, height, width, channels)` and `"times"` of shape
            `(batch,)`, floats in [0, 1].

    Example:
    >>> unet = UNet(image_shape=(28, 28, 1), widths=(16, 32))
    >>> outputs = unet({
    ...     "noisy_images": keras.random.normal((2, 28, 28, 1)),
    ...     "times": keras.ops.array([0.1, 0.9]),
    ... })
    >>> outputs.shape
    (2, 28, 28, 1)
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        widths=(32, 64, 96),
        blocks_per_level=1,
        attention_levels=(2,),
        embedding_dim=128,
        num_heads=2,
        dropout=0.0,
        **kwargs,
    ):
        image_shape = tuple(image_shape)
        widths = tuple(widths)
        attention_levels = tuple(attention_levels)
        _check_config(image_shape, widths, blocks_per_level, attention_levels)

        noisy_images = keras.Input(image_shape, name="noisy_images")
        times = keras.Input((), name="times")

        embedding = SinusoidalEmbedding(embedding_dim // 2, name="time_sinusoids")(
            times
        )
        embedding = keras.layers.Dense(
            embedding_dim, activation="silu", name="time_mlp_1"
        )(embedding)
        embedding = keras.layers.Dense(embedding_dim, name="time_mlp_2")(embedding)

        x = keras.layers.Conv2D(widths[0], 3, padding="same", name="stem")(
            noisy_images
        )
        skips = [x]
        last_level = len(widths) - 1
        for level, width in enumerate(widths):
            for block in range(blocks_per_level):
                x = ResBlock(width, dropout, name=f"down{level}_res{block}")(
                    x, embedding
                )
                if level in attention_levels:
                    x = AttentionBlock(num_heads, name=f"down{level}_attn{block}")(x)
                skips.append(x)
            if level < last_level:
                x = Downsample(width, name=f"down{level}_downsample")(x)
                skips.append(x)

        x = ResBlock(widths[-1], dropout, name="mid_res0")(x, embedding)
        x = AttentionBlock(num_heads, name="mid_attn")(x)
        x = ResBlock(widths[-1], dropout, name="mid_res1")(x, embedding)

        for level in reversed(range(len(widths))):
            width = widths[level]
            for block in range(blocks_per_level + 1):
                x = keras.layers.Concatenate(name=f"up{level}_skip{block}")(
                    [x, skips.pop()]
                )
                x = ResBlock(width, dropout, name=f"up{level}_res{block}")(
                    x, embedding
                )
                if level in attention_levels:
                    x = AttentionBlock(num_heads, name=f"up{level}_attn{block}")(x)
            if level > 0:
                x = Upsample(widths[level - 1], name=f"up{level}_upsample")(x)

        x = keras.layers.GroupNormalization(group_count(widths[0]), name="out_norm")(x)
        x = keras.layers.Activation("silu", name="out_silu")(x)
        outputs = keras.layers.Conv2D(
            image_shape[-1],
            3,
            padding="same",
            kernel_initializer="zeros",
            name="out_conv",
        )(x)

        super().__init__(
            inputs={"noisy_images": noisy_images, "times": times},
            outputs=outputs,
            **kwargs,
        )
        self.image_shape = image_shape
        self.widths = widths
        self.blocks_per_level = blocks_per_level
        self.attention_levels = attention_levels
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": self.image_shape,
            "widths": self.widths,
            "blocks_per_level": self.blocks_per_level,
            "attention_levels": self.attention_levels,
            "embedding_dim": self.embedding_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_config(image_shape, widths, blocks_per_level, attention_levels):
    if len(image_shape) != 3:
        raise ValueError(
            f"`image_shape` must be (height, width, channels). Got {image_shape}"
        )
    if not widths or any(int(w) <= 0 for w in widths):
        raise ValueError(f"`widths` must be positive ints. Got {widths}")
    factor = 2 ** (len(widths) - 1)
    if image_shape[0] % factor or image_shape[1] % factor:
        raise ValueError(
            f"Height and width {image_shape[:2]} must divide by {factor} for "
            f"{len(widths)} levels; use fewer `widths` or pad the images."
        )
    if blocks_per_level < 1:
        raise ValueError(f"`blocks_per_level` must be >= 1. Got {blocks_per_level}")
    bad = [level for level in attention_levels if not 0 <= level < len(widths)]
    if bad:
        raise ValueError(
            f"`attention_levels` {bad} are not levels of widths {widths} "
            f"(valid: 0 to {len(widths) - 1})."
        )
