import keras
from keras import ops

from keras_diffusion.layers.group_norm import GroupNorm
from keras_diffusion.layers.res_block import group_count


@keras.saving.register_keras_serializable(package="keras_diffusion")
class CrossAttention(keras.layers.Layer):
    """Residual cross-attention: image positions attend to context tokens.

    `GroupNorm` on the feature map, then multi-head attention with the
    pixels as queries and the context tokens (for example, a class
    embedding split into tokens) as keys and values, then a residual
    connection. The output projection starts at zero, so a new block is the
    identity map.

    Args:
        num_heads: int, attention heads; the channels must divide evenly.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        context: tensor of shape `(batch, num_tokens, context_dim)`.

    Example:
    >>> layer = CrossAttention(num_heads=2)
    >>> x = keras.random.normal((2, 7, 7, 32))
    >>> layer(x, keras.random.normal((2, 4, 16))).shape
    (2, 7, 7, 32)
    """

    def __init__(self, num_heads=1, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads

    def build(self, inputs_shape, context_shape):
        _, height, width, channels = inputs_shape
        if channels % self.num_heads:
            raise ValueError(
                f"channels ({channels}) must be divisible by num_heads "
                f"({self.num_heads})."
            )
        self.norm = GroupNorm(
            group_count(channels), name="norm"
        )
        self.norm.build(inputs_shape)
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads,
            channels // self.num_heads,
            output_shape=channels,
            name="attention",
        )
        self.attention.build((inputs_shape[0], height * width, channels),
                             tuple(context_shape))
        kernel = self.attention.output_dense.kernel
        kernel.assign(ops.zeros(kernel.shape, kernel.dtype))

    def call(self, inputs, context):
        _, height, width, channels = inputs.shape
        tokens = ops.reshape(self.norm(inputs), (-1, height * width, channels))
        attended = self.attention(tokens, context)
        return inputs + ops.reshape(attended, (-1, height, width, channels))

    def compute_output_shape(self, inputs_shape, context_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads})
        return config
