"""`utils.fast_paths`: each switch changes the route a layer takes (where
the backend has one), never its result."""

import functools
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import randomize
from keras_diffusion.layers import Conv2D
from keras_diffusion.layers import GroupNorm
from keras_diffusion.layers import Upsample
from keras_diffusion.utils import fast_paths

BACKEND = keras.backend.backend()

# Per switch: a layer that has the fast path, the Keras layer class whose
# `call` is the generic route it skips, and the backends where it skips it.
LAYER_CASES = {
    "torch_conv": (lambda: Conv2D(5, 3, padding="same"),
                   keras.layers.Conv2D, ("torch",)),
    "torch_group_norm": (lambda: GroupNorm(4),
                         keras.layers.GroupNormalization, ("torch",)),
    "transposed_conv": (lambda: Upsample(5),
                        keras.layers.Conv2DTranspose, ("jax", "torch")),
}


def test_every_switch_is_on_by_default():
    assert set(fast_paths.NAMES) == {"torch_conv", "torch_group_norm",
                                     "transposed_conv", "batch_sharding"}
    assert all(fast_paths.enabled(name) for name in fast_paths.NAMES)


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="torch_group_norm"):
        fast_paths.enabled("group_norm")
    with pytest.raises(ValueError, match="'conv'"):
        with fast_paths.disabled("torch_conv", "conv"):
            pass
    # Refused before changing anything.
    assert fast_paths.enabled("torch_conv")


def test_disabled_restores_the_switches_after_an_error():
    with pytest.raises(RuntimeError, match="inside"):
        with fast_paths.disabled("torch_conv", "batch_sharding"):
            assert not fast_paths.enabled("torch_conv")
            assert not fast_paths.enabled("batch_sharding")
            assert fast_paths.enabled("transposed_conv")
            raise RuntimeError("inside")
    assert all(fast_paths.enabled(name) for name in fast_paths.NAMES)


def test_nested_blocks_restore_the_outer_state():
    with fast_paths.disabled("torch_conv"):
        with fast_paths.disabled("torch_conv", "transposed_conv"):
            assert not fast_paths.enabled("transposed_conv")
        assert not fast_paths.enabled("torch_conv")
        assert fast_paths.enabled("transposed_conv")
    assert fast_paths.enabled("torch_conv")


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_a_layer_gives_the_same_output_with_its_fast_path_off(name,
                                                              monkeypatch):
    make_layer, generic_class, fast_backends = LAYER_CASES[name]
    layer = make_layer()
    x = np.random.default_rng(0).normal(size=(2, 7, 5, 8)).astype("float32")
    layer.build(x.shape)
    randomize(layer)  # a zero bias or a unit scale would hide mistakes
    generic_calls = _count_calls(monkeypatch, generic_class)

    fast = keras.ops.convert_to_numpy(layer(x))
    calls_on = len(generic_calls)
    with fast_paths.disabled(name):
        generic = keras.ops.convert_to_numpy(layer(x))
    calls_off = len(generic_calls) - calls_on

    np.testing.assert_allclose(fast, generic, atol=1e-4)
    # The switch decides the route where the backend has a fast path;
    # elsewhere the layer always takes Keras' route.
    assert (calls_on, calls_off) == (0 if BACKEND in fast_backends else 1, 1)
    # Back on after the block.
    layer(x)
    assert len(generic_calls) == calls_on + calls_off + calls_on


def test_the_unet_gives_the_same_output_with_every_fast_path_off(tiny_unet):
    rng = np.random.default_rng(0)
    inputs = {"noisy_images": rng.normal(size=(2, 28, 28, 1)).astype("float32"),
              "times": rng.uniform(size=(2,)).astype("float32")}
    tiny_unet(inputs)
    randomize(tiny_unet)
    fast = keras.ops.convert_to_numpy(tiny_unet(inputs))
    with fast_paths.disabled(*fast_paths.NAMES):
        generic = keras.ops.convert_to_numpy(tiny_unet(inputs))
    np.testing.assert_allclose(fast, generic, atol=1e-4)


# Under JAX with two CPU devices (set before JAX starts, so in a fresh
# process): a compiled function's output, split among the devices or not.
BATCH_SHARDING_SCRIPT = r"""
import json
import keras
import numpy as np
from keras_diffusion.utils import fast_paths
from keras_diffusion.utils.compile import compile_function

scale = keras.Variable(np.float32(2.0))
affine = compile_function(lambda x, t: x * scale + t, [scale])
x = np.arange(12, dtype="float32").reshape(4, 3)
split = affine(x, np.float32(1))
with fast_paths.disabled("batch_sharding"):
    whole = affine(x, np.float32(1))
print(json.dumps({
    "devices": [len(split.sharding.device_set), len(whole.sharding.device_set)],
    "max_diff": float(np.abs(np.asarray(split) - np.asarray(whole)).max()),
}))
"""


def test_batch_sharding_switch_keeps_the_batch_on_one_device():
    if BACKEND != "jax":
        pytest.skip(f"batch sharding is a JAX fast path, not {BACKEND}'s")
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS=" ".join(
        [os.environ.get("XLA_FLAGS", ""),
         "--xla_force_host_platform_device_count=2"]).strip())
    result = subprocess.run([sys.executable, "-c", BATCH_SHARDING_SCRIPT],
                            env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["devices"] == [2, 1]
    assert summary["max_diff"] == 0.0


def _count_calls(monkeypatch, layer_class):
    """Wraps `layer_class.call` (for this test) to record each call; returns
    the list that grows by one per call."""
    calls = []
    original = layer_class.call

    @functools.wraps(original)
    def counted(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(layer_class, "call", counted)
    return calls
