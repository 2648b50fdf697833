"""Switches for the backend fast paths: where a layer skips Keras' generic code.

A few layers and `compile_function` take a faster route than Keras' generic
one on one backend. Each route has a named switch here, all on by default.
Turned off, the code takes Keras' generic route instead. The results are
the same either way (up to float rounding); only the speed differs.
`benchmarks/performance.py` measures each route against its generic one
with these switches (docs/performance.md has the figures).

- `"torch_conv"`: `layers.Conv2D` under PyTorch calls
  `torch.nn.functional.conv2d` on a channels-first view of its
  channels-last input, instead of Keras' convolution, which copies the
  layout around each call.
- `"torch_group_norm"`: `layers.GroupNorm` under PyTorch (float32) calls
  `torch.nn.functional.group_norm`, instead of Keras' reshape and moments
  arithmetic.
- `"transposed_conv"`: `layers.Upsample` computes its transposed
  convolution as one sub-pixel convolution under JAX, and with
  `torch.nn.functional.conv_transpose2d` on a channels-first view under
  PyTorch, instead of Keras' `Conv2DTranspose`.
- `"batch_sharding"`: under JAX with several CPU devices
  (`utils.jax_cpu`), `compile_function` splits the sampling batch among
  them, instead of computing it on one device.

A layer reads its switch each time it runs eagerly, or once when it is
traced: a function compiled with `jax.jit` or `tf.function` keeps the route
it was traced with (`"batch_sharding"` is read at every call). The switches
are global to the process.

For example, to sample with Keras' generic convolutions (eagerly, so that
no step compiled earlier is reused):

    from keras_diffusion.utils import fast_paths

    with fast_paths.disabled("torch_conv", "transposed_conv"):
        images = model.generate(16, compile=False)
"""

import contextlib

# Every switch, by name, and whether it is on.
_switches = {
    "torch_conv": True,
    "torch_group_norm": True,
    "transposed_conv": True,
    "batch_sharding": True,
}
NAMES = tuple(_switches)


def enabled(name):
    """Whether the fast path `name` is on.

    Args:
        name: str, one of `NAMES`.

    Returns:
        bool.

    Raises:
        ValueError: `name` is not a switch.
    """
    _check_names([name])
    return _switches[name]


@contextlib.contextmanager
def disabled(*names):
    """Turns the fast paths `names` off inside a `with` block.

    On leaving the block, even by an exception, each switch is back as it
    was before (blocks nest). With no names, changes nothing.

    Args:
        *names: str, each one of `NAMES`.

    Raises:
        ValueError: a name is not a switch (then no switch is changed).
    """
    _check_names(names)
    saved = {name: _switches[name] for name in names}
    for name in names:
        _switches[name] = False
    try:
        yield
    finally:
        _switches.update(saved)


def _check_names(names):
    unknown = [name for name in names if name not in _switches]
    if unknown:
        raise ValueError(
            f"Unknown fast path(s) {unknown}; the switches are {list(NAMES)}."
        )
