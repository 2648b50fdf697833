import keras
import numpy as np

from keras_diffusion.utils.compile import compile_function
from keras_diffusion.utils.compile import without_gradients


def make_step_function(sampler, model_fn, variables, compile=True):
    """`(samples, t, t_next, noise, context) -> SamplerOutput`, compiled.

    A multistep sampler (`sampler.multistep`, such as `DPMSolverSampler`)
    takes one more argument, its state: the previous step's `pred_images`,
    `(samples, t, t_next, noise, context, state) -> SamplerOutput`.

    Args:
        sampler: object with `step(model_fn, samples, t, t_next, noise)`
            (a multistep sampler: `step(..., noise, state)`) returning a
            `SamplerOutput`.
        model_fn: callable `(samples, t, context) -> prediction`; `context`
            carries per-call tensors such as class labels and the guidance
            weight, so that changing them does not recompile.
        variables: the Keras variables that `model_fn` reads.
        compile: bool; `False` steps eagerly (for debugging and benchmarks),
            still without recording gradients.

    Example:
    >>> step_fn = make_step_function(DDIMSampler(num_steps=50), model_fn,
    ...                              network.variables)
    >>> x = step_fn(x, t, t_next, None, None).samples
    """

    def step(samples, t, t_next, noise, context, *state):
        def network(x, timestep):
            return model_fn(x, timestep, context)

        return sampler.step(network, samples, t, t_next, noise, *state)

    return compile_function(step, variables) if compile else without_gradients(step)


def run_sampler(sampler, step_fn, initial_noise, seed=0, progress=True,
                context=None, record_steps=None):
    """Runs `sampler` from `initial_noise` and returns the final samples.

    Calls the (compiled) `step_fn` once per timestep pair from a Python loop,
    with a progress bar. Fresh noise for stochastic samplers comes from a
    NumPy generator seeded by `seed`, so one saved model gives the same
    samples under every backend.

    Args:
        sampler: object with `timesteps()` and `needs_noise`; a multistep
            sampler (`multistep = True`) also has `initial_state(samples)`,
            whose value is passed to the first step, and each step's
            `pred_images` to the next.
        step_fn: from `make_step_function`.
        initial_noise: NumPy array, the starting samples.
        seed: int, seeds the per-step noise.
        progress: bool, show a progress bar; or a `keras.utils.Progbar`
            to advance by one per step (for a bar over several batches).
        context: passed to every step (see `make_step_function`).
        record_steps: `None`, or the indices (0-based, into
            `sampler.timesteps()`) of the steps whose `pred_images` (the
            estimate of the final samples) to keep.

    Returns:
        NumPy float32 array shaped like `initial_noise`; with `record_steps`,
        `(samples, predictions)`, the predictions stacked as
        `(len(record_steps),) + initial_noise.shape`.

    Example:
    >>> images = run_sampler(sampler, step_fn, noise, seed=0, progress=False)
    """
    rng = np.random.default_rng(seed)
    samples = keras.ops.convert_to_tensor(np.asarray(initial_noise, "float32"))
    pairs = sampler.timesteps()
    record = None if record_steps is None else set(int(i) for i in record_steps)
    predictions = []
    bar = progress
    if progress is True:
        bar = keras.utils.Progbar(len(pairs), unit_name="step")
    multistep = getattr(sampler, "multistep", False)
    state = sampler.initial_state(samples) if multistep else None
    for index, (t, t_next) in enumerate(pairs):
        noise = None
        if sampler.needs_noise:
            noise = keras.ops.convert_to_tensor(
                rng.standard_normal(initial_noise.shape).astype("float32")
            )
        args = (samples, _scalar(t), _scalar(t_next), noise, context)
        output = step_fn(*args, state) if multistep else step_fn(*args)
        if record is not None and index in record:
            predictions.append(keras.ops.convert_to_numpy(output.pred_images))
        samples, state = output.samples, output.pred_images
        if bar:
            bar.add(1)
    samples = keras.ops.convert_to_numpy(samples)
    if record is None:
        return samples
    predictions = np.stack(predictions) if predictions else np.zeros(
        (0,) + samples.shape, "float32")
    return samples, predictions


def _scalar(value):
    value = np.asarray(value)
    dtype = "int32" if np.issubdtype(value.dtype, np.integer) else "float32"
    return keras.ops.convert_to_tensor(value.astype(dtype))
