"""Compiles a pure function of tensors for the active Keras backend."""

import functools

import keras

from keras_diffusion.utils import fast_paths


def compile_function(fn, variables):
    """Returns `fn` compiled for the active backend, for inference.

    - TensorFlow: `tf.function`, without AutoGraph (`fn` must branch on
      Python values only, as every sampler step does; the trace is then
      quicker).
    - JAX: `jax.jit` of a stateless version of `fn`, with the current values
      of `variables` passed in through a `keras.StatelessScope` (the way
      keras-hub compiles generation). With several JAX CPU devices (one per
      core, `keras_diffusion.utils.jax_cpu`), the batch is split among them
      and the variables copied to each, so that every core works on its
      part of the batch; a batch that does not split evenly stays on one
      (as does every batch with the fast path `"batch_sharding"` off,
      `keras_diffusion.utils.fast_paths`).
    - PyTorch: `fn` under `torch.no_grad()` (eager; no graph capture).

    Args:
        fn: callable taking and returning tensors (or `None`s), which reads
            the Keras `variables`.
        variables: list of every `keras.Variable` that `fn` reads.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True, autograph=False)
    if backend == "jax":
        import jax

        @jax.jit
        def stateless_fn(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        # The variables' values last copied to every device, per sharding:
        # copied again only when a variable has a new value.
        copies = {}

        def replicate(values, sharding):
            source, copied = copies.get(sharding, (None, None))
            if source is None or any(a is not b for a, b in zip(source, values)):
                copied = jax.device_put(values, sharding)
                copies[sharding] = (values, copied)
            return copied

        def compiled(*args):
            values = [v.value for v in variables]
            shardings = _batch_shardings(args)
            if shardings is not None:
                batch, replicated = shardings
                values = replicate(values, replicated)
                size = args[0].shape[0]
                args = jax.tree_util.tree_map(
                    lambda a: (jax.device_put(a, batch)
                               if getattr(a, "ndim", 0) and a.shape[0] == size
                               else a), args)
            return stateless_fn(values, *args)

        return compiled
    if backend == "torch":
        import torch

        def no_grad_fn(*args):
            with torch.no_grad():
                return fn(*args)

        return no_grad_fn
    return fn


def _batch_shardings(args):
    """JAX: `(split along the batch, copied to each)` shardings, or `None`.

    `None` unless the first argument is a batch that splits evenly among
    several CPU devices (`cpu_devices_for`), and the fast path
    `"batch_sharding"` is on (`keras_diffusion.utils.fast_paths`).
    """
    if not fast_paths.enabled("batch_sharding"):
        return None
    if not args or not getattr(args[0], "ndim", 0):
        return None
    return _shardings_for_batch(int(args[0].shape[0]))


@functools.lru_cache(maxsize=None)
def _shardings_for_batch(batch_size):
    """`_batch_shardings` for one batch size: made once, not at every step
    (the devices are fixed once JAX has started)."""
    import jax
    import numpy as np

    from keras_diffusion.utils.jax_cpu import cpu_devices_for

    if cpu_devices_for(batch_size) is None:
        return None
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
    spec = jax.sharding.PartitionSpec
    return (jax.sharding.NamedSharding(mesh, spec("batch")),
            jax.sharding.NamedSharding(mesh, spec()))


def without_gradients(fn):
    """Returns `fn` run without recording gradients, uncompiled.

    On PyTorch, `fn` under `torch.no_grad()`: otherwise autograd keeps the
    graph of every sampling step alive through the samples, and memory grows
    with the step count (256 images x 50 DDIM steps ran out of memory).
    TensorFlow and JAX record gradients only when asked, so `fn` itself.
    """
    if keras.backend.backend() != "torch":
        return fn
    import torch

    def no_grad_fn(*args):
        with torch.no_grad():
            return fn(*args)

    return no_grad_fn
