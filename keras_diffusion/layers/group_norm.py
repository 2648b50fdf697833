import keras

from keras_diffusion.utils import fast_paths


@keras.saving.register_keras_serializable(package="keras_diffusion")
class GroupNorm(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization` with PyTorch's fused kernel under torch.

    Same arguments, weights (`gamma`, `beta`) and results as the Keras
    layer. Under the torch backend, for float32 inputs normalized over the
    last axis, it calls `torch.nn.functional.group_norm` on a channels-first
    view instead of Keras' generic reshape/moments arithmetic, many small
    `sum`, `div` and `mul` kernels per step (docs/performance.md has the
    profile). Elsewhere, or with the fast path `"torch_group_norm"` turned
    off (`keras_diffusion.utils.fast_paths`), it is the Keras layer
    unchanged.

    Args:
        groups: int, number of groups the channels are split into.
        **kwargs: the other arguments of `keras.layers.GroupNormalization`
            (`axis`, `epsilon`, `center`, `scale`, ...).

    Call arguments:
        inputs: tensor, channels on `axis` (default last).

    Example:
    >>> GroupNorm(4)(keras.random.normal((2, 7, 7, 8))).shape
    (2, 7, 7, 8)
    """

    def call(self, inputs):
        if not self._fused(inputs):
            return super().call(inputs)
        import torch

        gamma = keras.ops.convert_to_tensor(self.gamma) if self.scale else None
        beta = keras.ops.convert_to_tensor(self.beta) if self.center else None
        channels_first = torch.movedim(inputs, -1, 1)
        outputs = torch.nn.functional.group_norm(
            channels_first, self.groups, gamma, beta, self.epsilon
        )
        return torch.movedim(outputs, 1, -1)

    def _fused(self, inputs):
        return (keras.backend.backend() == "torch"
                and fast_paths.enabled("torch_group_norm")
                and self.axis in (-1, len(inputs.shape) - 1)
                and keras.backend.standardize_dtype(inputs.dtype) == "float32"
                and self.compute_dtype == "float32")
