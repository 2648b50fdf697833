import keras

from keras_diffusion.layers import AttentionBlock
from keras_diffusion.layers import Conv2D
from keras_diffusion.layers import CrossAttention
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

    With `num_classes`, the network also takes integer class labels, where
    the label `num_classes` is the reserved "null" class (no condition, for
    classifier-free guidance). The class enters through either or both of two
    switchable routes:

    - `class_input_channel`: a learned class embedding is mapped by a dense
      layer to a `height x width` map and concatenated to the noisy image as
      an extra input channel;
    - `class_cross_attention`: a learned class embedding is split into
      `num_class_tokens` tokens, which the image features attend to through
      `CrossAttention` in the middle block and after every `ResBlock` of the
      levels in `cross_attention_levels`.

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
        num_classes: int or None; None makes an unconditional network.
        class_input_channel: bool, the class as an extra input channel.
        class_cross_attention: bool, the class through cross-attention.
        num_class_tokens: int, tokens per class for cross-attention.
        cross_attention_levels: tuple of levels that get cross-attention
            besides the middle block.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        inputs: dict with `"noisy_images"` of shape
            `(batch, height, width, channels)`, `"times"` of shape
            `(batch,)`, floats in [0, 1], and with `num_classes`, `"labels"`
            of shape `(batch,)`, ints in `[0, num_classes]`.

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
        num_classes=None,
        class_input_channel=True,
        class_cross_attention=True,
        num_class_tokens=4,
        cross_attention_levels=(),
        **kwargs,
    ):
        image_shape = tuple(image_shape)
        widths = tuple(widths)
        attention_levels = tuple(attention_levels)
        cross_attention_levels = tuple(cross_attention_levels)
        _check_config(image_shape, widths, blocks_per_level, attention_levels)
        if num_classes is not None:
            _check_classes(num_classes, class_input_channel, class_cross_attention,
                           cross_attention_levels, len(widths))

        noisy_images = keras.Input(image_shape, name="noisy_images")
        times = keras.Input((), name="times")
        inputs = {"noisy_images": noisy_images, "times": times}
        class_tokens = None
        network_input = noisy_images
        if num_classes is not None:
            labels = keras.Input((), dtype="int32", name="labels")
            inputs["labels"] = labels
            if class_input_channel:
                class_map = keras.layers.Embedding(
                    num_classes + 1, embedding_dim, name="class_map_embedding"
                )(labels)
                class_map = keras.layers.Dense(
                    image_shape[0] * image_shape[1], name="class_map_dense"
                )(class_map)
                class_map = keras.layers.Reshape(
                    image_shape[:2] + (1,), name="class_map"
                )(class_map)
                network_input = keras.layers.Concatenate(name="class_channel")(
                    [noisy_images, class_map]
                )
            if class_cross_attention:
                class_tokens = keras.layers.Embedding(
                    num_classes + 1,
                    num_class_tokens * embedding_dim,
                    name="class_token_embedding",
                )(labels)
                class_tokens = keras.layers.Reshape(
                    (num_class_tokens, embedding_dim), name="class_tokens"
                )(class_tokens)

        def attend_to_class(x, name):
            if class_tokens is None:
                return x
            return CrossAttention(num_heads, name=name)(x, class_tokens)

        embedding = SinusoidalEmbedding(embedding_dim // 2, name="time_sinusoids")(
            times
        )
        embedding = keras.layers.Dense(
            embedding_dim, activation="silu", name="time_mlp_1"
        )(embedding)
        embedding = keras.layers.Dense(embedding_dim, name="time_mlp_2")(embedding)

        x = Conv2D(widths[0], 3, padding="same", name="stem")(
            network_input
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
                if level in cross_attention_levels:
                    x = attend_to_class(x, f"down{level}_xattn{block}")
                skips.append(x)
            if level < last_level:
                x = Downsample(width, name=f"down{level}_downsample")(x)
                skips.append(x)

        x = ResBlock(widths[-1], dropout, name="mid_res0")(x, embedding)
        x = AttentionBlock(num_heads, name="mid_attn")(x)
        x = attend_to_class(x, "mid_xattn")
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
                if level in cross_attention_levels:
                    x = attend_to_class(x, f"up{level}_xattn{block}")
            if level > 0:
                x = Upsample(widths[level - 1], name=f"up{level}_upsample")(x)

        # Keras' own layer here, not `GroupNorm`: a functional model stores
        # each layer's weights under a name made from its class, so the
        # shipped `.keras` files need this one to stay GroupNormalization.
        x = keras.layers.GroupNormalization(group_count(widths[0]),
                                            name="out_norm")(x)
        x = keras.layers.Activation("silu", name="out_silu")(x)
        outputs = Conv2D(
            image_shape[-1],
            3,
            padding="same",
            kernel_initializer="zeros",
            name="out_conv",
        )(x)

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.image_shape = image_shape
        self.widths = widths
        self.blocks_per_level = blocks_per_level
        self.attention_levels = attention_levels
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.num_classes = num_classes
        self.class_input_channel = class_input_channel
        self.class_cross_attention = class_cross_attention
        self.num_class_tokens = num_class_tokens
        self.cross_attention_levels = cross_attention_levels

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
            "num_classes": self.num_classes,
            "class_input_channel": self.class_input_channel,
            "class_cross_attention": self.class_cross_attention,
            "num_class_tokens": self.num_class_tokens,
            "cross_attention_levels": self.cross_attention_levels,
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


def _check_classes(num_classes, input_channel, cross_attention, levels, num_levels):
    if int(num_classes) < 1:
        raise ValueError(f"`num_classes` must be >= 1 or None. Got {num_classes}")
    if not (input_channel or cross_attention):
        raise ValueError(
            "A class-conditional UNet needs at least one route for the class: "
            "set class_input_channel and/or class_cross_attention."
        )
    bad = [level for level in levels if not 0 <= level < num_levels]
    if bad:
        raise ValueError(
            f"`cross_attention_levels` {bad} are not levels (valid: 0 to "
            f"{num_levels - 1})."
        )
