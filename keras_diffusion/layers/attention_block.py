import keras
from keras import ops

from keras_diffusion.layers.group_norm import GroupNorm
from keras_diffusion.layers.res_block import group_count


@keras.saving.register_keras_serializable(package="keras_diffusion")
class AttentionBlock(keras.layers.Layer):
    """Residual self-attention over the spatial positions of a feature map.

    `GroupNorm`, then multi-head attention in which every pixel attends to
    every other pixel, then a residual connection. The attention output
    projection starts at zero, so a new block is the identity map.

    Args:
        num_heads: int, attention heads; the channels must divide evenly.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.

    Example:
    >>> block = AttentionBlock(num_heads=2)
    >>> block(keras.random.normal((2, 7, 7, 32))).shape
    (2, 7, 7, 32)
    """

    def __init__(self, num_heads=1, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads

    def build(self, input_shape):
        _, height, width, channels = input_shape
        if channels % self.num_heads:
            raise ValueError(
                f"channels ({channels}) must be divisible by num_heads "
                f"({self.num_heads})."
            )
        self.norm = GroupNorm(
            group_count(channels), name="norm"
        )
        self.norm.build(input_shape)
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads,
            channels // self.num_heads,
            output_shape=channels,
            name="attention",
        )
        tokens_shape = (input_shape[0], height * width, channels)
        self.attention.build(tokens_shape, tokens_shape)
        # Zero the output projection: the block starts as the identity map.
        kernel = self.attention.output_dense.kernel
        kernel.assign(ops.zeros(kernel.shape, kernel.dtype))

    def call(self, inputs):
        _, height, width, channels = inputs.shape
        tokens = ops.reshape(self.norm(inputs), (-1, height * width, channels))
        attended = self.attention(tokens, tokens)
        return inputs + ops.reshape(attended, (-1, height, width, channels))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads})
        return config
