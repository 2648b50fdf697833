"""Compiles a pure function of tensors for the active Keras backend."""

import keras


def compile_function(fn, variables):
    """Returns `fn` compiled for the active backend, for inference.

    - TensorFlow: `tf.function`.
    - JAX: `jax.jit` of a stateless version of `fn`, with the current values
      of `variables` passed in through a `keras.StatelessScope` (the way
      keras-hub compiles generation).
    - PyTorch: `fn` under `torch.no_grad()` (eager; no graph capture).

    Args:
        fn: callable taking and returning tensors (or `None`s), which reads
            the Keras `variables`.
        variables: list of every `keras.Variable` that `fn` reads.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True)
    if backend == "jax":
        import jax

        @jax.jit
        def stateless_fn(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        def compiled(*args):
            return stateless_fn([v.value for v in variables], *args)

        return compiled
    if backend == "torch":
        import torch

        def no_grad_fn(*args):
            with torch.no_grad():
                return fn(*args)

        return no_grad_fn
    return fn


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
