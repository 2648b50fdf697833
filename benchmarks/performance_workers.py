"""The measuring workers of `benchmarks/performance.py`, one per figure kind.

Each worker runs in its own process (Keras fixes the backend per process),
started by `performance.py` as

    KERAS_BACKEND=jax python benchmarks/performance.py --worker train ...

and prints its figures as one line, `RESULT {json}` (`emit`). The workers:
`peak` (timed matmuls), `train` (recipe `ddpm` and its A/B variants),
`sample` (DDIM sampling, compiled and eager, and the sampling A/B pairs),
`flops` (our UNet's FLOPs per image); diffusers' reference is in
`performance_diffusers.py`. The A/B variants run the library as before an
optimization by turning its fast path off (`as_before`).
"""

import contextlib
import gzip
import json
import os
import resource
import time

from flop_count import analytic_flops
from flop_count import torch_flop_count


def cpu_seconds():
    """CPU time (user and system) this process has used, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def max_rss_mib():
    """This process's peak resident memory (`ru_maxrss`), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_images(path, count):
    """MNIST training digits as float32 `(N, 28, 28, 1)` in [-1, 1].

    Read straight from the IDX file, so that a worker imports no library
    just for its data; random images if `path` has no MNIST.
    """
    import numpy as np

    filename = os.path.join(path or "", "train-images-idx3-ubyte.gz")
    if path and os.path.isfile(filename):
        with gzip.open(filename, "rb") as f:
            images = np.frombuffer(f.read(), "uint8", offset=16)
        images = images.reshape(-1, 28, 28, 1)[:count]
        return images.astype("float32") / 127.5 - 1.0, "MNIST"
    images = np.random.default_rng(0).uniform(-1, 1, (count, 28, 28, 1))
    return images.astype("float32"), "random"


def emit(result):
    """Prints a worker's figures as the one line `performance.py` reads."""
    print("RESULT " + json.dumps(result), flush=True)


def worker_peak(args):
    """Timed float32 (and bfloat16) matmuls: the machine's arithmetic peak."""
    import numpy as np
    import torch

    n = 512 if args.quick else 2048
    result = {"load": os.getloadavg()[0], "n": n,
              "torch_threads": torch.get_num_threads()}

    def rate(fn, reps):
        fn()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9

    a32 = torch.randn(n, n)
    b32 = torch.randn(n, n)
    result["torch_f32_gflops"] = rate(lambda: torch.mm(a32, b32), 5)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    result["torch_bf16_gflops"] = rate(lambda: torch.mm(a16, b16), 5)
    x = np.random.default_rng(0).standard_normal((n, n)).astype("float32")
    result["numpy_f32_gflops"] = rate(lambda: x @ x, 5)
    result["f32_peak_gflops"] = max(result["torch_f32_gflops"],
                                    result["numpy_f32_gflops"])
    result["load_end"] = os.getloadavg()[0]
    emit(result)


class _StepRecorder:
    """Keras callback (made lazily): per-step time, CPU time and loss."""

    def __new__(cls):
        import keras

        class Recorder(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times, self.cpu, self.losses = [], [], []
                self.intervals, self.cpu_intervals = [], []
                self._mean = 0.0

            def on_epoch_begin(self, epoch, logs=None):
                self._last = None

            def on_train_batch_end(self, batch, logs=None):
                # `logs["loss"]` is the running mean over the epoch; reading
                # it also waits for the step to finish (JAX is asynchronous).
                mean = float(logs["loss"])
                count = batch + 1
                self.losses.append(count * mean - (count - 1) * self._mean
                                   if count > 1 else mean)
                self._mean = mean
                now, cpu = time.perf_counter(), cpu_seconds()
                if self._last is not None:
                    # Steps after the first of each `fit`: steady state, no
                    # iterator start-up or callbacks set-up.
                    self.intervals.append(now - self._last[0])
                    self.cpu_intervals.append(cpu - self._last[1])
                self._last = (now, cpu)

        return Recorder()


def worker_train(args):
    """Trains recipe "ddpm" with `model.fit`: a baseline and its A/B variants.

    Variants (all from the same initial weights, seeds and data order):
    `f32` the library's default; `bf16` under the `mixed_bfloat16` dtype
    policy; `noprefetch` the same `tf.data` pipeline without `prefetch`;
    `transpose` (JAX) Upsample through XLA's transposed convolution, as
    before the sub-pixel fix; `noema` AdamW without the weights' EMA;
    `cores` (JAX) data-parallel over one CPU device per core, what
    `kd train` does under JAX (`keras_diffusion/utils/jax_cpu.py`);
    `kerasgn` (PyTorch) `GroupNorm` through Keras' generic arithmetic, as
    before the fused `torch.nn.functional.group_norm`; `kerasconv`
    (PyTorch) convolutions through Keras' generic path, as before `Conv2D`
    and `Upsample` called torch on channels-first views (`as_before`).
    After warm-up, each variant trains `rounds` times `steps` steps, the
    variants taking turns, so that they share the machine's load.
    """
    import keras
    import numpy as np

    from keras_diffusion.data.pipeline import make_dataset
    from keras_diffusion.app.distribution import data_parallel
    from keras_diffusion.app.recipes import build_model
    from keras_diffusion.utils.jax_cpu import cpu_devices_for

    keras.utils.set_random_seed(0)
    backend = keras.backend.backend()
    batch, steps, rounds = args.batch, args.steps, args.rounds
    images, source = load_images(args.data, max(batch * 8, 2048))
    variants = args.variants.split(",")
    load_start = os.getloadavg()[0]

    def dataset(variant):
        if variant != "noprefetch":
            return make_dataset(images, batch_size=batch, seed=0)
        import tensorflow as tf

        return (tf.data.Dataset.from_tensor_slices(images)
                .shuffle(len(images), seed=0, reshuffle_each_iteration=True)
                .repeat().batch(batch, drop_remainder=True))

    def scope(variant):
        """`cores`: inside the data-parallel distribution; others: none."""
        if variant != "cores":
            return contextlib.nullcontext()
        devices = cpu_devices_for(batch)
        if devices is None:
            raise RuntimeError("variant `cores` needs several JAX CPU devices "
                               f"dividing the batch; got {keras.distribution.list_devices()}")
        return data_parallel(devices)

    def build(variant, weights):
        keras.config.set_dtype_policy(
            "mixed_bfloat16" if variant == "bf16" else "float32")
        try:
            model = build_model("ddpm", seed=0)
        finally:
            keras.config.set_dtype_policy("float32")
        if variant == "noema":
            model.compile(optimizer=keras.optimizers.AdamW(
                1e-3, weight_decay=1e-4, use_ema=False))
        if weights is not None:
            model.set_weights(weights)
        return model

    def fit(entry, num_steps):
        with scope(entry["variant"]), as_before(entry["variant"]):
            entry["model"].fit(entry["data"], epochs=1, steps_per_epoch=num_steps,
                               verbose=0, callbacks=[entry["recorder"]])

    runs, weights = {}, None
    for variant in variants:
        start, cpu0 = time.perf_counter(), cpu_seconds()
        with scope(variant):
            model = build(variant, weights)
        if weights is None:
            weights = model.get_weights()
        entry = {"model": model, "data": dataset(variant), "variant": variant,
                 "recorder": _StepRecorder()}
        fit(entry, 2)  # the first `fit` traces and compiles the train step
        entry["warmup_s"] = time.perf_counter() - start
        entry["warmup_cpu_s"] = cpu_seconds() - cpu0
        runs[variant] = entry
        if variant == variants[0]:
            # Peak memory of the baseline alone: before any other variant.
            fit(entry, steps)
            entry["train_rss_mib"] = max_rss_mib()
            entry["recorder"].intervals.clear()
            entry["recorder"].cpu_intervals.clear()
    loads = []
    for index in range(rounds):
        order = variants if index % 2 == 0 else variants[::-1]
        for variant in order:
            loads.append(os.getloadavg()[0])
            fit(runs[variant], steps)
    result = {"backend": backend, "batch": batch, "data": source,
              "params": runs[variants[0]]["model"].network.count_params(),
              "load": load_start, "load_during": sum(loads) / len(loads),
              "load_end": os.getloadavg()[0], "variants": {}}
    base_losses = runs[variants[0]]["recorder"].losses
    for variant, entry in runs.items():
        recorder = entry["recorder"]
        seconds, cpu = sum(recorder.intervals), sum(recorder.cpu_intervals)
        count = len(recorder.intervals) * batch
        losses = recorder.losses
        common = min(len(losses), len(base_losses))
        figures = {
            "images_per_s": count / seconds,
            "images_per_cpu_s": count / cpu if cpu > 0 else None,
            "timed_steps": len(recorder.intervals),
            "warmup_s": entry["warmup_s"], "warmup_cpu_s": entry["warmup_cpu_s"],
            "losses": [round(loss, 5) for loss in losses],
            # Per-step losses against the baseline's (same weights, seeds
            # and batches): the mean absolute difference, relative.
            "loss_rel_diff": float(
                np.mean(np.abs(np.subtract(losses[:common], base_losses[:common])))
                / np.mean(base_losses[:common])),
        }
        if "train_rss_mib" in entry:
            figures["train_rss_mib"] = entry["train_rss_mib"]
        if variant == "noprefetch" or variant == variants[0]:
            figures["input_ms_per_batch"] = _input_time(entry["data"], 20)
        result["variants"][variant] = figures
    emit(result)


def _input_time(dataset, count):
    """Milliseconds to produce one batch from the input pipeline alone."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return 1000 * (time.perf_counter() - start) / count


# The fast paths (`keras_diffusion.utils.fast_paths`) that each "before"
# variant turns off: the library as it was before that optimization.
BEFORE = {
    # JAX: `Upsample` through XLA's transposed convolution.
    "transpose": ("transposed_conv",),
    # JAX: compiled sampling steps on one device, the batch not split
    # among the CPU devices.
    "onedevice": ("batch_sharding",),
    # PyTorch: `GroupNorm` through Keras' arithmetic.
    "kerasgn": ("torch_group_norm",),
    # PyTorch: `Conv2D` and `Upsample` through Keras' convolutions, which
    # copy the layout around each call.
    "kerasconv": ("torch_conv", "transposed_conv"),
}


def as_before(variant):
    """Runs the library as it was before the optimization `variant`.

    Args:
        variant: str, a key of `BEFORE`; any other (`None`, `"f32"`, ...)
            changes nothing.

    Returns:
        A context manager: the `BEFORE[variant]` fast paths are off inside.
    """
    from keras_diffusion.utils import fast_paths

    return fast_paths.disabled(*BEFORE.get(variant, ()))


def first_step_args(sampler, noise):
    """The arguments of `sampler`'s first step from `noise`, as tensors:
    what a compiled step is traced (and a warm-up timed) with."""
    import keras
    import numpy as np

    t, t_next = sampler.timesteps()[0]
    return (keras.ops.convert_to_tensor(noise),
            keras.ops.convert_to_tensor(np.int32(t)),
            keras.ops.convert_to_tensor(np.int32(t_next)), None, None)


def worker_sample(args):
    """DDIM sampling with the shipped "ddpm" model: compiled, then eager.

    Also the peak memory of sampling 1,000 images (batched by `generate`),
    and, under JAX and PyTorch, the compiled step before and after that
    backend's convolution fix (`SAMPLING_AB`), interleaved.
    """
    import keras
    import numpy as np

    from keras_diffusion.presets import load_model

    backend = keras.backend.backend()
    model = load_model("ddpm")
    loaded_rss = max_rss_mib()
    result = {"backend": backend, "images": args.images,
              "steps": args.sample_steps, "load": os.getloadavg()[0],
              "loaded_rss_mib": loaded_rss}
    sampler = model.make_sampler("ddim", args.sample_steps)
    noise = np.random.default_rng(0).standard_normal(
        (args.images, 28, 28, 1)).astype("float32")

    def first_step(step_fn):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(step_fn(*first_step_args(sampler, noise)).samples)
        return time.perf_counter() - start

    for mode in ("compiled", "eager"):
        compile = mode == "compiled"
        # Warm-up: one step on a full batch traces and compiles the cached
        # step that `generate` then uses.
        warm = first_step(model.step_function(sampler, compile))
        load = os.getloadavg()[0]
        start, cpu0 = time.perf_counter(), cpu_seconds()
        model.generate(args.images, sampler="ddim", num_steps=args.sample_steps,
                       seed=0, batch_size=args.images, progress=False,
                       compile=compile)
        seconds = time.perf_counter() - start
        result[mode] = {"seconds": seconds, "cpu_s": cpu_seconds() - cpu0,
                        "first_step_s": warm, "load": load,
                        "rss_mib": max_rss_mib()}
        if mode == "compiled":
            # 1,000 images in `generate`'s default batches of 256.
            start = time.perf_counter()
            model.generate(args.memory_images, sampler="ddim",
                           num_steps=args.memory_steps, seed=0, progress=False)
            result["memory"] = {"images": args.memory_images,
                                "steps": args.memory_steps,
                                "seconds": time.perf_counter() - start,
                                "rss_mib": max_rss_mib()}
    if backend in SAMPLING_AB and args.ab_sample_steps:
        result["sampling_ab"] = [_sampling_ab(model, variant, noise, args)
                                 for variant in SAMPLING_AB[backend]]
    result["load_end"] = os.getloadavg()[0]
    emit(result)


# The optimizations each backend's sampling A/B pairs undo (`as_before`).
SAMPLING_AB = {"jax": ("transpose", "onedevice"), "torch": ("kerasconv",)}


def _sampling_ab(model, variant, noise, args):
    """Compiled DDIM steps as before `variant` and now, interleaved."""
    import keras

    from keras_diffusion.samplers import make_step_function
    from keras_diffusion.samplers import run_sampler

    sampler = model.make_sampler("ddim", args.ab_sample_steps)
    steps = {}
    for version in ("before", "after"):
        step_fn = make_step_function(sampler, model.model_fn,
                                     model.network.variables)

        def step(*step_args, step_fn=step_fn, version=version):
            # `jax.jit` traces at the first call; PyTorch runs each call.
            with as_before(variant if version == "before" else None):
                return step_fn(*step_args)

        keras.ops.convert_to_numpy(step(*first_step_args(sampler, noise)).samples)
        steps[version] = step
    seconds = {"before": 0.0, "after": 0.0}
    outputs = {}
    for order in (("after", "before"), ("before", "after")):
        for version in order:
            start = time.perf_counter()
            outputs[version] = run_sampler(sampler, steps[version], noise,
                                           progress=False)
            seconds[version] += time.perf_counter() - start
    images = 2 * len(noise)
    return {"variant": variant, "steps": args.ab_sample_steps,
            "before_images_per_s": images / seconds["before"],
            "after_images_per_s": images / seconds["after"],
            "max_abs_diff": float(abs(outputs["after"] - outputs["before"]).max())}


def worker_flops(args):
    """Forward FLOPs per image of our UNet: counted from the layer shapes,
    and (under PyTorch) by `FlopCounterMode` as a cross-check."""
    import keras
    import numpy as np

    from keras_diffusion.app.recipes import build_model

    network = build_model("ddpm", compile=False).network
    inputs = {"noisy_images": np.zeros((1, 28, 28, 1), "float32"),
              "times": np.full((1,), 0.5, "float32")}
    result = {"backend": keras.backend.backend(),
              "params": network.count_params(),
              "analytic": analytic_flops(network, inputs)}
    if keras.backend.backend() == "torch":
        result["flop_counter"] = torch_flop_count(lambda: network(inputs))
    emit(result)
