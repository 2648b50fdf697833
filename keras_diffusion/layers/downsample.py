import keras

from keras_diffusion.layers.conv2d import Conv2D


@keras.saving.register_keras_serializable(package="keras_diffusion")
class Downsample(keras.layers.Layer):
    """Halves height and width with a strided 3x3 convolution.

    Args:
        channels: int, output channels.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels_in)`.

    Example:
    >>> Downsample(16)(keras.random.normal((2, 28, 28, 8))).shape
    (2, 14, 14, 16)
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = Conv2D(
            channels, 3, strides=2, padding="same", name="conv"
        )

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, inputs):
        return self.conv(inputs)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config
