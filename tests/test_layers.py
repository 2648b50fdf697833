import keras
import numpy as np
import pytest

from conftest import randomize
from keras_diffusion.layers import AttentionBlock
from keras_diffusion.layers import Conv2D
from keras_diffusion.layers import Downsample
from keras_diffusion.layers import ResBlock
from keras_diffusion.layers import SinusoidalEmbedding
from keras_diffusion.layers import Upsample
from keras_diffusion.layers.upsample import subpixel_conv_transpose
from keras_diffusion.networks import UNet


def _roundtrip_config(layer):
    config = layer.get_config()
    return type(layer).from_config(config), config


def test_sinusoidal_embedding_values():
    layer = SinusoidalEmbedding(8, scale=1.0)
    out = keras.ops.convert_to_numpy(layer(np.array([0.0, 1.0], "float32")))
    assert out.shape == (2, 8)
    np.testing.assert_allclose(out[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-6)
    frequencies = 10000.0 ** (-np.arange(4) / 4)
    np.testing.assert_allclose(out[1, :4], np.sin(frequencies), atol=1e-5)
    np.testing.assert_allclose(out[1, 4:], np.cos(frequencies), atol=1e-5)
    restored, config = _roundtrip_config(layer)
    assert restored.get_config() == config


def test_sinusoidal_embedding_rejects_odd_dim():
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(7)


@pytest.mark.parametrize("in_channels, channels", [(8, 8), (8, 16)])
def test_res_block_shape_and_identity_at_init(in_channels, channels):
    block = ResBlock(channels)
    x = np.random.normal(size=(2, 8, 8, in_channels)).astype("float32")
    embedding = np.random.normal(size=(2, 12)).astype("float32")
    out = keras.ops.convert_to_numpy(block(x, embedding))
    assert out.shape == (2, 8, 8, channels)
    if in_channels == channels:
        # The last conv starts at zero, so a new block is the identity.
        np.testing.assert_allclose(out, x, atol=1e-6)
    restored, config = _roundtrip_config(block)
    assert restored.get_config() == config


def test_attention_block_shape_and_identity_at_init():
    block = AttentionBlock(num_heads=2)
    x = np.random.normal(size=(2, 4, 4, 8)).astype("float32")
    out = keras.ops.convert_to_numpy(block(x))
    np.testing.assert_allclose(out, x, atol=1e-6)
    restored, config = _roundtrip_config(block)
    assert restored.get_config() == config


def test_attention_block_mixes_positions():
    block = AttentionBlock(num_heads=1)
    x = np.random.normal(size=(1, 4, 4, 8)).astype("float32")
    block(x)
    for variable in block.trainable_variables:
        variable.assign(np.random.normal(size=variable.shape).astype("float32"))
    changed = x.copy()
    changed[0, 0, 0] += 1.0
    delta = keras.ops.convert_to_numpy(block(changed) - block(x))
    # A change at one pixel reaches another pixel only through attention.
    assert np.abs(delta[0, 3, 3]).max() > 1e-4


def test_sinusoidal_embedding_stays_float32_under_mixed_precision():
    times = np.array([0.1234, 0.9987], "float32")
    expected = keras.ops.convert_to_numpy(SinusoidalEmbedding(16)(times))
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = SinusoidalEmbedding(16)
    finally:
        keras.config.set_dtype_policy("float32")
    assert layer.compute_dtype == "float32"
    got = keras.ops.convert_to_numpy(layer(times))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_down_and_up_sample_shapes():
    x = np.zeros((2, 28, 28, 4), "float32")
    assert tuple(Downsample(8)(x).shape) == (2, 14, 14, 8)
    assert tuple(Upsample(3)(np.zeros((2, 7, 7, 4), "float32")).shape) == (2, 14, 14, 3)
    for layer in (Downsample(8), Upsample(3)):
        restored, config = _roundtrip_config(layer)
        assert restored.get_config() == config


def test_subpixel_conv_transpose_matches_conv2d_transpose():
    # Upsample's JAX path must equal the transposed convolution it replaces,
    # with the same weights, on every backend (odd and non-square sizes too).
    layer, x = _random_upsample(seed=0)
    expected = keras.ops.convert_to_numpy(layer.conv(x))
    got = keras.ops.convert_to_numpy(subpixel_conv_transpose(
        keras.ops.convert_to_tensor(x), layer.conv.kernel, layer.conv.bias))
    assert got.shape == (2, 14, 10, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected,
                               atol=1e-4)


# (input height, width), then Conv2D arguments: "same" padding that torch
# pads evenly and unevenly (stride 2 on an even size), "valid", dilation.
CONV_CASES = [
    ((9, 9), dict(filters=5, kernel_size=3, padding="same")),
    ((8, 8), dict(filters=5, kernel_size=3, padding="same", strides=2)),
    ((7, 10), dict(filters=5, kernel_size=4, padding="same")),
    ((8, 6), dict(filters=5, kernel_size=1)),
    ((9, 8), dict(filters=5, kernel_size=3, padding="valid", strides=2)),
    ((9, 9), dict(filters=5, kernel_size=3, padding="same", dilation_rate=2)),
]


@pytest.mark.parametrize("size,arguments", CONV_CASES)
def test_conv2d_matches_keras_conv2d(size, arguments):
    # Conv2D's torch path (a channels-first view, no copies) must give Keras'
    # result and gradients with the same weights; elsewhere it is Keras'.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2,) + size + (4,)).astype("float32")
    ours, reference = Conv2D(**arguments), keras.layers.Conv2D(**arguments)
    ours.build(x.shape)
    reference.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32")
               for w in ours.get_weights()]
    ours.set_weights(weights)
    reference.set_weights(weights)
    expected = keras.ops.convert_to_numpy(reference(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)), expected,
                               atol=1e-4)
    np.testing.assert_allclose(_input_and_kernel_gradients(ours, x),
                               _input_and_kernel_gradients(reference, x),
                               atol=1e-3)
    restored, config = _roundtrip_config(ours)
    assert restored.get_config() == config and type(restored) is Conv2D


def test_upsample_gradients_match_conv2d_transpose():
    # Upsample's own paths (sub-pixel under JAX, torch's conv_transpose2d on
    # a view under PyTorch) against Keras' Conv2DTranspose, gradients too.
    layer, x = _random_upsample(seed=1)
    np.testing.assert_allclose(
        _input_and_kernel_gradients(layer, x, kernel=layer.conv.kernel),
        _input_and_kernel_gradients(layer.conv, x), atol=1e-3)


def _random_upsample(seed):
    """An `Upsample(3)` with random weights and a random 7x5 input."""
    rng = np.random.default_rng(seed)
    layer = Upsample(3)
    x = rng.normal(size=(2, 7, 5, 4)).astype("float32")
    layer.build(x.shape)
    for variable in layer.conv.trainable_variables:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    return layer, x


def _input_and_kernel_gradients(layer, x, kernel=None):
    """Gradients of a weighted sum of squared outputs (weights that change
    along every axis, so that a flipped or shifted output would show)
    w.r.t. the input and the kernel, flattened into one NumPy vector, with
    the active backend's autodiff."""
    kernel = layer.kernel if kernel is None else kernel
    backend = keras.backend.backend()

    def weighted_sum(outputs):
        size = int(np.prod(outputs.shape))
        weights = keras.ops.reshape(keras.ops.linspace(0.5, 1.5, size),
                                    outputs.shape)
        return keras.ops.sum(outputs ** 2 * weights)

    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = weighted_sum(layer(x))
        grads = tape.gradient(loss, [x, kernel.value])
    elif backend == "jax":
        import jax

        def loss(x, kernel_value):
            with keras.StatelessScope(state_mapping=[(kernel, kernel_value)]):
                return weighted_sum(layer(x))

        grads = jax.grad(loss, argnums=(0, 1))(x, kernel.value)
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        loss = weighted_sum(layer(x))
        grads = torch.autograd.grad(loss, [x, kernel.value])
    return np.concatenate([keras.ops.convert_to_numpy(g).ravel() for g in grads])


def _unet_inputs(batch=2):
    rng = np.random.default_rng(0)
    return {
        "noisy_images": rng.normal(size=(batch, 28, 28, 1)).astype("float32"),
        "times": rng.uniform(size=(batch,)).astype("float32"),
    }


def test_unet_shape_config_and_save_roundtrip(tiny_unet, tmp_path):
    randomize(tiny_unet)
    inputs = _unet_inputs()
    out = keras.ops.convert_to_numpy(tiny_unet(inputs))
    assert out.shape == (2, 28, 28, 1)
    assert np.abs(out).max() > 0

    clone = UNet.from_config(tiny_unet.get_config())
    assert clone.count_params() == tiny_unet.count_params()

    path = str(tmp_path / "unet.keras")
    tiny_unet.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(inputs)), out, atol=1e-5
    )


def test_unet_depends_on_time(tiny_unet):
    randomize(tiny_unet)
    inputs = _unet_inputs()
    later = dict(inputs, times=inputs["times"] + 0.3)
    difference = keras.ops.convert_to_numpy(tiny_unet(inputs) - tiny_unet(later))
    assert np.abs(difference).max() > 1e-5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"widths": (8, 16, 32, 64)}, "divide by 8"),
        ({"attention_levels": (5,)}, "not levels"),
        ({"blocks_per_level": 0}, "blocks_per_level"),
    ],
)
def test_unet_rejects_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)


def test_group_norm_matches_keras_group_normalization():
    # Under torch, GroupNorm takes PyTorch's fused kernel; on every backend
    # its output must equal the Keras layer's.
    from keras_diffusion.layers import GroupNorm

    x = np.random.default_rng(0).normal(2, 3, (3, 5, 5, 12)).astype("float32")
    gamma, beta = np.random.default_rng(1).normal(size=(2, 12)).astype("float32")
    outputs = []
    for layer in (keras.layers.GroupNormalization(4, epsilon=1e-3),
                  GroupNorm(4, epsilon=1e-3)):
        layer.build(x.shape)
        layer.set_weights([gamma, beta])
        outputs.append(keras.ops.convert_to_numpy(layer(x)))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)
    # Each group of 3 channels is normalized on its own: mean beta, and
    # (with gamma 1) unit variance.
    plain = GroupNorm(4, center=False, scale=False)
    normalized = keras.ops.convert_to_numpy(plain(x)).reshape(3, 25, 4, 3)
    np.testing.assert_allclose(normalized.mean(axis=(1, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(normalized.var(axis=(1, 3)), 1, atol=1e-2)
