import keras
from keras import ops

from keras_diffusion.utils import fast_paths


@keras.saving.register_keras_serializable(package="keras_diffusion")
class Upsample(keras.layers.Layer):
    """Doubles height and width with a 4x4 transposed convolution, stride 2.

    Under JAX the same transposed convolution is computed as a sub-pixel
    convolution (`subpixel_conv_transpose`): XLA's CPU compiler has no fast
    kernel for a transposed (input-dilated) convolution. Under PyTorch it
    calls `torch.nn.functional.conv_transpose2d` on a channels-first view
    (`torch_conv_transpose`), without the layout copies and crop of Keras'
    generic path (docs/performance.md has the measurements). With the fast
    path `"transposed_conv"` turned off (`keras_diffusion.utils.fast_paths`),
    or under TensorFlow, it calls the `Conv2DTranspose` layer. The weights
    and the result are the same on every backend and either way.

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
        backend = keras.backend.backend()
        if backend == "jax" and fast_paths.enabled("transposed_conv"):
            return subpixel_conv_transpose(inputs, self.conv.kernel,
                                           self.conv.bias)
        if backend == "torch" and fast_paths.enabled("transposed_conv"):
            return torch_conv_transpose(inputs, self.conv.kernel,
                                        self.conv.bias)
        return self.conv(inputs)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config


def subpixel_conv_transpose(inputs, kernel, bias):
    """A 4x4, stride-2, "same" `Conv2DTranspose` as one stride-1 convolution.

    Each output pixel `(2m + ry, 2n + rx)` of the transposed convolution
    sums a 2x2 window of input pixels, starting at `(m + ry - 1, n + rx - 1)`,
    with the kernel taps `(3 - ry - 2 jy, 3 - rx - 2 jx)` for window offsets
    `(jy, jx)`. So one 2x2 "valid" convolution of the zero-padded input, with
    the kernel rearranged into `4 * out_channels` outputs (one group per
    phase `(ry, rx)`), followed by interleaving the four phases, gives the
    transposed convolution exactly, with the same multiply count and no
    input dilation.

    Args:
        inputs: `(batch, height, width, in_channels)`, channels last.
        kernel: the `Conv2DTranspose` kernel, `(4, 4, out_channels,
            in_channels)`.
        bias: `(out_channels,)`.

    Returns:
        `(batch, 2 * height, 2 * width, out_channels)`.
    """
    kernel = ops.cast(kernel, inputs.dtype)
    out_channels, in_channels = kernel.shape[2], kernel.shape[3]
    # Flipped, a tap index 3 - r - 2j becomes r + 2j: split it into (j, r).
    kernel = ops.flip(ops.flip(kernel, 0), 1)
    kernel = ops.reshape(kernel, (2, 2, 2, 2, out_channels, in_channels))
    kernel = ops.transpose(kernel, (0, 2, 5, 1, 3, 4))  # jy jx in ry rx out
    kernel = ops.reshape(kernel, (2, 2, in_channels, 4 * out_channels))
    _, height, width, _ = inputs.shape
    padded = ops.pad(inputs, ((0, 0), (1, 1), (1, 1), (0, 0)))
    phases = ops.conv(padded, kernel, padding="valid")
    phases = ops.reshape(phases, (-1, height + 1, width + 1, 2, 2, out_channels))
    rows = [
        ops.stack([phases[:, ry:ry + height, rx:rx + width, ry, rx, :]
                   for rx in (0, 1)], axis=3)
        for ry in (0, 1)
    ]
    outputs = ops.reshape(ops.stack(rows, axis=2),
                          (-1, 2 * height, 2 * width, out_channels))
    return outputs + ops.cast(bias, outputs.dtype)


def torch_conv_transpose(inputs, kernel, bias):
    """The same transposed convolution with PyTorch's kernel, copying nothing.

    A channels-last tensor viewed as `(batch, channels, height, width)` is
    what oneDNN computes on directly; "same" padding of a 4x4 kernel at
    stride 2 is torch's symmetric `padding=1`.

    Args: as `subpixel_conv_transpose`; torch tensors.
    """
    import torch

    kernel = ops.cast(kernel, inputs.dtype)
    outputs = torch.nn.functional.conv_transpose2d(
        torch.permute(inputs, (0, 3, 1, 2)),
        torch.permute(kernel, (3, 2, 0, 1)),  # (in, out, height, width)
        stride=2,
        padding=1,
    )
    return torch.permute(outputs, (0, 2, 3, 1)) + ops.cast(bias, outputs.dtype)
