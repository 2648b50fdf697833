import keras


@keras.saving.register_keras_serializable(package="keras_diffusion")
class Upsample(keras.layers.Layer):
    """Doubles height and width with a 4x4 transposed convolution, stride 2.

    Args:
        channels: int, output channels.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels_in)`.

    Example:
    >>> Upsample(8)(keras.random.normal((2, 7, 7, 16))).shape
    (2, 14, 14, 8)
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = keras.layers.Conv2DTranspose(
            channels, 4, strides=2, padding="same", name="conv"
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
