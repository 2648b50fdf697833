import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_diffusion")
class SinusoidalEmbedding(keras.layers.Layer):
    """Sinusoidal embedding of a scalar time per example.

    Maps a time `t` (one float per example) to
    `[sin(s * t * w_0), ..., sin(s * t * w_{k-1}), cos(s * t * w_0), ...]`
    with frequencies `w_i = max_period ** (-i / k)` spaced geometrically, as in
    "Attention Is All You Need" and DDPM. `s` is `scale`: the networks in this
    package take time in [0, 1], and `scale=1000` spreads that over the same
    range as DDPM's integer timesteps.

    Under a mixed dtype policy (`mixed_bfloat16`, `mixed_float16`) the layer
    computes in float32 unless given a `dtype`: in bfloat16 the time and the
    angles `s * t * w_i` (up to 1000) would keep 8 bits, and the fast
    sinusoids would be noise.

    Args:
        dim: int, even size of the embedding.
        max_period: float, the longest period of the sinusoids.
        scale: float, multiplies the time before embedding.
        **kwargs: standard layer arguments.

    Call arguments:
        times: float tensor of shape `(batch,)` or `(batch, 1)`.

    Example:
    >>> layer = SinusoidalEmbedding(32)
    >>> layer(keras.ops.array([0.0, 0.5])).shape
    (2, 32)
    """

    def __init__(self, dim, max_period=10000.0, scale=1000.0, **kwargs):
        mixed = keras.config.dtype_policy().compute_dtype in ("float16", "bfloat16")
        if mixed and kwargs.get("dtype") is None:
            kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if dim <= 0 or dim % 2:
            raise ValueError(f"`dim` must be a positive even int. Got dim={dim}")
        self.dim = dim
        self.max_period = max_period
        self.scale = scale

    def call(self, times):
        times = ops.reshape(ops.cast(times, self.compute_dtype), (-1, 1))
        half = self.dim // 2
        # `arange(0, half)`, not `arange(half)`: jax2onnx (kd export under
        # JAX) converts only the form with both ends.
        exponents = ops.arange(0, half, dtype="float32") / half
        frequencies = ops.exp(-math.log(self.max_period) * exponents)
        angles = self.scale * times * ops.cast(frequencies[None, :], times.dtype)
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"dim": self.dim, "max_period": self.max_period, "scale": self.scale}
        )
        return config
