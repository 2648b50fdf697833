"""`data_parallel()`: data-parallel training on several devices or hosts.

Keras' own APIs do the work: `keras.distribution.DataParallel` under JAX
(the devices of one machine, or of several hosts after
`keras.distribution.initialize()`), `tf.distribute.MirroredStrategy` under
TensorFlow (the devices of one machine). See docs/distributed.md.
"""

import collections
import contextlib
import os

import keras

from keras_diffusion.utils.jax_cpu import cpu_devices_for

# The variables `keras.distribution.initialize()` reads on every host.
MULTI_HOST_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)

# The MirroredStrategy of each device list (see `_tf_mirrored`).
_STRATEGIES = {}

# What `data_parallel()` yields: the model replicas of the global batch (all
# devices, over all hosts), the number of processes (hosts) and this one's
# id. Process 0 writes the files.
Replicas = collections.namedtuple(
    "Replicas", ["num_replicas", "num_processes", "process_id"]
)


@contextlib.contextmanager
def data_parallel(devices=None):
    """A context in which models are built, compiled and trained data-parallel.

    Build, compile and `fit` the model inside it. Each step's global batch is
    split evenly among the replicas (one per device); the variables are
    replicated, and the gradients are averaged over the global batch. The
    training noise is drawn for the global batch, so replicas never share
    noise and the loss equals one device's on the same global batch.

    - JAX: `keras.distribution.DataParallel` over `devices` (default: every
      device of `keras.distribution.list_devices()`). When any of
      `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES`
      and `KERAS_DISTRIBUTION_PROCESS_ID` is set, it first joins the hosts
      with `keras.distribution.initialize()` (once per process, before any
      other JAX computation), and the replicas span every host's devices;
      Keras then gives each host its share of each global batch of a
      `tf.data` dataset.
    - TensorFlow: `tf.distribute.MirroredStrategy` over `devices` (default:
      the machine's GPUs, else its CPU devices); one machine only.
    - PyTorch: refused with a `ValueError`; the installed Keras'
      `keras.distribution` has no PyTorch implementation.

    Inside an already active distribution (a `DataParallel` or a
    `tf.distribute` strategy) it reuses that one, so calls may nest.

    Args:
        devices: list of device names such as `["gpu:0", "gpu:1"]`, or
            `None` for all of them.

    Yields:
        `Replicas(num_replicas, num_processes, process_id)`: the number of
        replicas the global batch is split among, the number of processes
        (hosts), and this process's id (0 on one machine). Only process 0
        should write files.

    Raises:
        ValueError: under PyTorch, for multi-host variables under
            TensorFlow, or for bad `devices` or variables.

    Example:
    >>> with data_parallel() as replicas:
    ...     model = DDPM(UNet(widths=(16, 32)))
    ...     model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    ...     model.fit(dataset, epochs=1, steps_per_epoch=100)
    ...     # each global batch of `dataset` is split among
    ...     # `replicas.num_replicas` devices
    """
    backend = keras.backend.backend()
    if devices is not None and (
        isinstance(devices, str) or not devices
        or not all(isinstance(device, str) for device in devices)
    ):
        raise ValueError(
            "`devices` must be a non-empty list of device names such as "
            f"['gpu:0', 'gpu:1'], or None for all. Got {devices!r}"
        )
    if backend == "jax":
        with _jax_data_parallel(devices) as replicas:
            yield replicas
    elif backend == "tensorflow":
        with _tf_mirrored(devices) as replicas:
            yield replicas
    else:
        raise ValueError(
            f"Data-parallel training (`distribute`) is not supported under "
            f"KERAS_BACKEND={backend}: keras.distribution in Keras "
            f"{keras.__version__} has no PyTorch implementation. Use "
            "KERAS_BACKEND=jax (several devices and hosts) or tensorflow "
            "(the devices of one machine)."
        )


def cpu_data_parallel(batch_size):
    """The context `kd train` trains in when not told `--distribute`.

    `data_parallel()` over JAX's CPU devices when
    `keras_diffusion.utils.jax_cpu.split_cpu_into_devices` made several and
    `batch_size` splits evenly among them (see `cpu_devices_for`);
    otherwise no distribution. Either way, `with cpu_data_parallel(128) as
    replicas:` works: `replicas` is then a `Replicas` or `None`.
    """
    devices = cpu_devices_for(batch_size)
    return data_parallel(devices) if devices else contextlib.nullcontext()


@contextlib.contextmanager
def _jax_data_parallel(devices):
    current = keras.distribution.distribution()
    if current is not None:
        yield _jax_replicas(current)
        return
    if any(name in os.environ for name in MULTI_HOST_VARIABLES):
        _initialize_hosts()
    distribution = keras.distribution.DataParallel(
        devices=devices or keras.distribution.list_devices()
    )
    with distribution.scope():
        yield _jax_replicas(distribution)


def _jax_replicas(distribution):
    import jax

    return Replicas(distribution.num_model_replicas, jax.process_count(),
                    jax.process_index())


def _initialize_hosts():
    """`keras.distribution.initialize()` from the environment, once."""
    import jax

    if jax.distributed.is_initialized():
        return
    values = {name: os.environ.get(name) for name in MULTI_HOST_VARIABLES}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(
            f"Several hosts need all of {', '.join(MULTI_HOST_VARIABLES)} set on "
            f"every host; {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set."
        )
    try:
        num_processes = int(values["KERAS_DISTRIBUTION_NUM_PROCESSES"])
        process_id = int(values["KERAS_DISTRIBUTION_PROCESS_ID"])
    except ValueError:
        raise ValueError(
            "KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID "
            f"must be integers. Got {values['KERAS_DISTRIBUTION_NUM_PROCESSES']!r} "
            f"and {values['KERAS_DISTRIBUTION_PROCESS_ID']!r}"
        ) from None
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(
            "KERAS_DISTRIBUTION_PROCESS_ID must be in 0 to "
            "KERAS_DISTRIBUTION_NUM_PROCESSES - 1. Got process id "
            f"{process_id} of {num_processes} processes."
        )
    keras.distribution.initialize()


@contextlib.contextmanager
def _tf_mirrored(devices):
    import tensorflow as tf

    set_variables = [name for name in MULTI_HOST_VARIABLES if name in os.environ]
    if set_variables:
        raise ValueError(
            f"{', '.join(set_variables)} set: training on several hosts is "
            "supported under KERAS_BACKEND=jax only; under tensorflow, "
            "`distribute` uses the devices of one machine."
        )
    if tf.distribute.has_strategy():
        strategy = tf.distribute.get_strategy()
        yield Replicas(strategy.num_replicas_in_sync, 1, 0)
        return
    devices = tuple(device if device.startswith("/") else f"/{device}"
                    for device in devices or keras.distribution.list_devices())
    # One strategy per device list and process: the collective ops of two
    # MirroredStrategy objects over the same devices can collide (their
    # keys start alike), failing with "Shape mismatch in the collective".
    if devices not in _STRATEGIES:
        _STRATEGIES[devices] = tf.distribute.MirroredStrategy(devices=list(devices))
    strategy = _STRATEGIES[devices]
    with strategy.scope():
        yield Replicas(strategy.num_replicas_in_sync, 1, 0)
