"""JAX on a multi-core CPU: one device per core, training split among them.

XLA's CPU backend runs a program's operations one after another, and the
convolutions of this package's small UNets (a few million multiplies each)
are too small to keep every core busy: a profile of a `ddpm` training
step (docs/performance.md) shows each operation running alone. TensorFlow
and PyTorch spread the same work over every core.

The fix that is ours to make: ask XLA for one CPU device per core
(`--xla_force_host_platform_device_count`, read once, when JAX starts its
backend) and train data-parallel over them, each device taking its share of
the batch (`keras_diffusion.app.distribution.data_parallel`). The devices'
programs then run side by side, and the replicas' gradients are averaged
over the global batch, so the training math is unchanged.

`kd` calls `split_cpu_into_devices()` before JAX starts; `train()` then
uses the devices when the batch splits evenly among them. In your own code,
call it before any JAX computation, or set the flag yourself:

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python train.py
"""

import os
import sys

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
# Measured on 2 cores only (docs/performance.md); with many cores, each
# device's share of a 128-image batch would become too small to be worth it.
MAX_DEVICES = 8


def usable_cores():
    """The number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_cpu_into_devices(num_devices=None):
    """Asks JAX for one CPU device per core, before JAX starts its backend.

    Adds `--xla_force_host_platform_device_count=N` to `XLA_FLAGS`. Does
    nothing when the flag is already there (your choice wins), when JAX has
    already started (the flag would be ignored), or for a single core.

    Args:
        num_devices: int, devices to make; default the number of usable
            cores, at most `MAX_DEVICES`.

    Returns:
        The number of devices asked for, or `None` if nothing was changed.
    """
    if num_devices is None:
        num_devices = min(usable_cores(), MAX_DEVICES)
    if num_devices < 2 or DEVICE_COUNT_FLAG in os.environ.get("XLA_FLAGS", ""):
        return None
    if _jax_backend_started():
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_COUNT_FLAG}={num_devices}".strip()
    return num_devices


def cpu_devices_for(batch_size):
    """The JAX CPU devices to train a batch on data-parallel, or `None`.

    `None` unless the backend is JAX, every device is a CPU device, there
    are at least two (see `split_cpu_into_devices`), and `batch_size`
    splits evenly among them.
    """
    import keras

    if keras.backend.backend() != "jax" or not isinstance(batch_size, int):
        return None
    devices = keras.distribution.list_devices()
    if len(devices) < 2 or not all(d.startswith("cpu") for d in devices):
        return None
    if batch_size % len(devices):
        return None
    return devices


def _jax_backend_started():
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        return True  # cannot tell: leave XLA_FLAGS alone
