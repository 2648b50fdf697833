import keras
import numpy as np

from keras_diffusion.utils.compile import compile_function


def make_step_function(sampler, model_fn, variables, compile=True):
    """`(samples, t, t_next, noise, context) -> next samples`, compiled.

    Args:
        sampler: object with `step(model_fn, samples, t, t_next, noise)`.
        model_fn: callable `(samples, t, context) -> prediction`; `context`
            carries per-call tensors such as class labels and the guidance
            weight, so that changing them does not recompile.
        variables: the Keras variables that `model_fn` reads.
        compile: bool; `False` steps eagerly (for debugging and benchmarks).
    """

    def step(samples, t, t_next, noise, context):
        def network(x, timestep):
            return model_fn(x, timestep, context)

        return sampler.step(network, samples, t, t_next, noise)

    return compile_function(step, variables) if compile else step


def run_sampler(sampler, step_fn, initial_noise, seed=0, progress=True,
                context=None):
    """Runs `sampler` from `initial_noise` and returns the final samples.

    Calls the (compiled) `step_fn` once per timestep pair from a Python loop,
    with a progress bar. Fresh noise for stochastic samplers comes from a
    NumPy generator seeded by `seed`, so one saved model gives the same
    samples under every backend.

    Args:
        sampler: object with `timesteps()` and `needs_noise`.
        step_fn: from `make_step_function`.
        initial_noise: NumPy array, the starting samples.
        seed: int, seeds the per-step noise.
        progress: bool, show a progress bar; or a `keras.utils.Progbar`
            to advance by one per step (for a bar over several batches).
        context: passed to every step (see `make_step_function`).

    Returns:
        NumPy float32 array shaped like `initial_noise`.
    """
    rng = np.random.default_rng(seed)
    samples = keras.ops.convert_to_tensor(np.asarray(initial_noise, "float32"))
    pairs = sampler.timesteps()
    bar = progress
    if progress is True:
        bar = keras.utils.Progbar(len(pairs), unit_name="step")
    for t, t_next in pairs:
        noise = None
        if sampler.needs_noise:
            noise = keras.ops.convert_to_tensor(
                rng.standard_normal(initial_noise.shape).astype("float32")
            )
        samples = step_fn(samples, _scalar(t), _scalar(t_next), noise, context)
        if bar:
            bar.add(1)
    return keras.ops.convert_to_numpy(samples)


def _scalar(value):
    value = np.asarray(value)
    dtype = "int32" if np.issubdtype(value.dtype, np.integer) else "float32"
    return keras.ops.convert_to_tensor(value.astype(dtype))
