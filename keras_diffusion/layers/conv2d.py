import keras

from keras_diffusion.utils import fast_paths


@keras.saving.register_keras_serializable(package="keras_diffusion")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` without Keras' layout copies under torch.

    Same arguments, weights (`kernel`, `bias`) and results as the Keras
    layer. Under the torch backend, Keras turns each channels-last input
    into a contiguous channels-first copy and then back into a
    channels-last copy for oneDNN, and the gradient makes both copies
    again (docs/performance.md has the profile). A channels-last tensor viewed
    as `(batch, channels, height, width)` is already what oneDNN wants, so
    this layer passes that view to `torch.nn.functional.conv2d`, with the
    bias added inside the convolution rather than in a second pass, and
    views the result back, copying nothing. Elsewhere (other backends,
    channels-first data), or with the fast path `"torch_conv"` turned off
    (`keras_diffusion.utils.fast_paths`), it is the Keras layer unchanged.

    Args:
        filters: int, output channels.
        kernel_size: int or pair of ints.
        **kwargs: the other arguments of `keras.layers.Conv2D` (`strides`,
            `padding`, `activation`, `kernel_initializer`, ...).

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.

    Example:
    >>> Conv2D(8, 3, padding="same")(keras.random.normal((2, 7, 7, 4))).shape
    (2, 7, 7, 8)
    """

    def call(self, inputs):
        if (keras.backend.backend() != "torch"
                or self.data_format != "channels_last"
                or not fast_paths.enabled("torch_conv")):
            return super().call(inputs)
        import torch

        channels_first = torch.permute(inputs, (0, 3, 1, 2))  # a view
        (top, bottom), (left, right) = self._same_padding(inputs.shape[1:3])
        padding = (top, left)
        if (top, left) != (bottom, right):
            channels_first = torch.nn.functional.pad(
                channels_first, (left, right, top, bottom))
            padding = 0
        kernel = torch.permute(keras.ops.cast(self.kernel, inputs.dtype),
                               (3, 2, 0, 1))
        if inputs.dtype != torch.float32:
            # Outside float32, a CPU without oneDNN kernels for the dtype
            # (bfloat16 on most) falls back to a convolution whose gradient
            # needs a contiguous weight.
            kernel = kernel.contiguous()
        outputs = torch.nn.functional.conv2d(
            channels_first,
            kernel,
            keras.ops.cast(self.bias, inputs.dtype) if self.use_bias else None,
            stride=self.strides,
            padding=padding,
            dilation=self.dilation_rate,
            groups=self.groups,
        )
        outputs = torch.permute(outputs, (0, 2, 3, 1))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _same_padding(self, spatial_shape):
        """`((top, bottom), (left, right))` zeros that Keras' `padding` adds."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        pads = []
        for size, kernel, stride, dilation in zip(
                spatial_shape, self.kernel_size, self.strides,
                self.dilation_rate):
            output_size = -(-size // stride)
            total = max((output_size - 1) * stride + (kernel - 1) * dilation
                        + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
