import keras
from keras import ops

from keras_diffusion.layers.conv2d import Conv2D
from keras_diffusion.layers.group_norm import GroupNorm


def group_count(channels, max_groups=8):
    """Largest divisor of `channels` that is at most `max_groups`."""
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


@keras.saving.register_keras_serializable(package="keras_diffusion")
class ResBlock(keras.layers.Layer):
    """Residual block with a projection of the conditioning embedding.

    `GroupNorm -> swish -> Conv3x3`, then the embedding (time, and class when
    the network is conditional) is projected to `channels` and added per
    channel, then `GroupNorm -> swish -> dropout -> Conv3x3`. The input joins
    the output through an identity, or through a 1x1 convolution when the
    channel count changes. The last convolution starts at zero, so a new block
    is the identity map.

    Args:
        channels: int, output channels.
        dropout: float, dropout rate before the second convolution.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, in_channels)`.
        embedding: tensor of shape `(batch, embedding_dim)`.
        training: bool, whether dropout is active.

    Example:
    >>> block = ResBlock(32)
    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> block(x, keras.random.normal((2, 64))).shape
    (2, 8, 8, 32)
    """

    def __init__(self, channels, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.dropout = dropout

    def build(self, inputs_shape, embedding_shape):
        input_shape = inputs_shape
        in_channels = input_shape[-1]
        self.norm1 = GroupNorm(
            group_count(in_channels), name="norm1"
        )
        self.norm1.build(input_shape)
        self.conv1 = Conv2D(
            self.channels, 3, padding="same", name="conv1"
        )
        self.conv1.build(input_shape)
        out_shape = tuple(input_shape[:-1]) + (self.channels,)
        self.embedding_projection = keras.layers.Dense(
            self.channels, name="embedding_projection"
        )
        self.embedding_projection.build(embedding_shape)
        self.norm2 = GroupNorm(
            group_count(self.channels), name="norm2"
        )
        self.norm2.build(out_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout)
        self.conv2 = Conv2D(
            self.channels,
            3,
            padding="same",
            kernel_initializer="zeros",
            name="conv2",
        )
        self.conv2.build(out_shape)
        self.skip = None
        if in_channels != self.channels:
            self.skip = Conv2D(self.channels, 1, name="skip")
            self.skip.build(input_shape)

    def call(self, inputs, embedding, training=None):
        x = self.conv1(ops.silu(self.norm1(inputs)))
        projected = self.embedding_projection(ops.silu(embedding))
        x = x + projected[:, None, None, :]
        x = ops.silu(self.norm2(x))
        x = self.conv2(self.dropout_layer(x, training=training))
        residual = inputs if self.skip is None else self.skip(inputs)
        return residual + x

    def compute_output_shape(self, inputs_shape, embedding_shape):
        return tuple(inputs_shape[:-1]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "dropout": self.dropout})
        return config
