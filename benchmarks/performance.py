"""Performance in one run: our UNet on TensorFlow, JAX and PyTorch against
diffusers, and the before/after figures of each optimization.

    python benchmarks/performance.py            # full run, writes docs/performance.md
    python benchmarks/performance.py --quick    # tiny settings, prints the table

It measures, each backend in its own subprocess (Keras fixes the backend
per process):

- training throughput (images/s) of the default pixel UNet (recipe `ddpm`,
  `model.fit` on a `make_dataset` pipeline of MNIST) and of a diffusers
  `UNet2DModel` of the same widths and blocks, trained with a plain PyTorch
  loop in the style of diffusers' unconditional training example (AdamW,
  MSE on the noise, `DDPMScheduler.add_noise`, `EMAModel`);
- sampling time for DDIM with 50 steps and 256 images: ours compiled and
  stepped eagerly on each backend, diffusers' `DDIMScheduler` under
  `torch.no_grad`;
- peak memory (`ru_maxrss`) of training at batch 128 and of sampling 1,000
  images (5 DDIM steps: memory does not grow with the step count);
- FLOPs per image (counted from the layer shapes, and cross-checked with
  PyTorch's `FlopCounterMode`), the achieved GFLOP/s of training (3x the
  forward FLOPs per image), and a timed float32 matmul as the machine's peak;
- A/B pairs, interleaved in one process so that they share the machine's
  load: JAX's transposed convolution before/after, `mixed_bfloat16` against
  float32 (speed and the loss curve from the same initial weights), the
  input pipeline with and without prefetch; and, in separate processes,
  PyTorch with `OMP_WAIT_POLICY=ACTIVE` (OpenMP's default) and `PASSIVE`.

Every figure is printed with the command that measures it alone (a worker:
`python benchmarks/performance.py --worker ...`).
"""

import argparse
import contextlib
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "mnist")
BACKENDS = ("tensorflow", "jax", "torch")
# The diffusers UNet2DModel matched to recipe "ddpm" (widths 16/32/64, one
# ResBlock per level down and two up, self-attention with 32-dim heads at
# the 7x7 level and in the middle, a 128-dim time embedding, 8 groups).
DIFFUSERS_UNET = {
    "sample_size": 28, "in_channels": 1, "out_channels": 1,
    "block_out_channels": (16, 32, 64), "layers_per_block": 1,
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    "attention_head_dim": 32, "norm_num_groups": 8, "time_embedding_dim": 128,
}
FULL = {"batch": 128, "steps": 5, "rounds": 2, "images": 256,
        "sample_steps": 50, "ab_sample_steps": 10, "memory_images": 1000,
        "memory_steps": 5, "omp_steps": 3}
QUICK = {"batch": 16, "steps": 2, "rounds": 2, "images": 16,
         "sample_steps": 3, "ab_sample_steps": 2, "memory_images": 40,
         "memory_steps": 2, "omp_steps": 2}
# The A/B variants trained beside the baseline ("f32") in each backend's
# training worker; see `worker_train`.
TRAIN_VARIANTS = {
    "tensorflow": "f32,bf16,noprefetch",
    "jax": "f32,cores,transpose,bf16,noema",
    "torch": "f32,bf16,kerasgn,kerasconv",
}


# ---------------------------------------------------------------- helpers


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def max_rss_mib():
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
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------- workers


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


@contextlib.contextmanager
def as_before(variant):
    """Runs the library as it was before the optimization `variant`.

    `transpose` (JAX): `Upsample` through XLA's transposed convolution;
    `onedevice` (JAX): compiled sampling steps on one device, the batch not
    split among the CPU devices; `kerasgn` (PyTorch): `GroupNorm` through
    Keras' arithmetic; `kerasconv` (PyTorch): `Conv2D` and `Upsample`
    through Keras' convolutions, which copy the layout around each call.
    Other variants: unchanged.
    """
    import keras

    from keras_diffusion.layers import Conv2D
    from keras_diffusion.layers import GroupNorm
    from keras_diffusion.layers import Upsample
    from keras_diffusion.utils import compile

    saved = (Upsample.call, GroupNorm._fused, Conv2D.call,
             compile._batch_shardings)
    if variant == "onedevice":
        compile._batch_shardings = lambda args: None
    if variant in ("transpose", "kerasconv"):
        Upsample.call = lambda self, inputs: self.conv(inputs)
    if variant == "kerasgn":
        GroupNorm._fused = lambda self, inputs: False
    if variant == "kerasconv":
        Conv2D.call = keras.layers.Conv2D.call
    try:
        yield
    finally:
        (Upsample.call, GroupNorm._fused, Conv2D.call,
         compile._batch_shardings) = saved


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


def worker_diffusers(args):
    """diffusers' UNet2DModel: training loop, DDIM sampling, then FLOPs."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import DDIMScheduler
    from diffusers import DDPMScheduler
    from diffusers import UNet2DModel
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    batch = args.batch
    images, source = load_images(args.data, max(batch * 8, 2048))
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    unet = UNet2DModel(**DIFFUSERS_UNET)
    result = {"backend": "torch (diffusers)", "batch": batch, "data": source,
              "params": sum(p.numel() for p in unet.parameters()),
              "load": os.getloadavg()[0],
              "torch_threads": torch.get_num_threads()}
    # Training, as diffusers' examples/unconditional_image_generation does
    # it (without accelerate, and sampling batches from a tensor in memory).
    schedule = {"num_train_timesteps": 1000, "beta_schedule": "linear",
                "beta_start": 1e-4, "beta_end": 0.02}
    noise_scheduler = DDPMScheduler(**schedule)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=1e-4)
    ema = EMAModel(unet.parameters(), decay=0.995)
    generator = torch.Generator().manual_seed(0)
    unet.train()

    def train_step():
        clean = data[torch.randint(len(data), (batch,), generator=generator)]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (batch,), generator=generator)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        pred = unet(noisy, timesteps, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(unet.parameters())
        return loss.item()

    start = time.perf_counter()
    for _ in range(2):
        train_step()
    warmup = time.perf_counter() - start
    losses, intervals, cpu_intervals, loads = [], [], [], []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        last = None
        for _ in range(args.steps):
            losses.append(train_step())
            now, cpu = time.perf_counter(), cpu_seconds()
            if last is not None:
                intervals.append(now - last[0])
                cpu_intervals.append(cpu - last[1])
            last = (now, cpu)
    count = len(intervals) * batch
    result["train"] = {"images_per_s": count / sum(intervals),
                       "images_per_cpu_s": count / sum(cpu_intervals),
                       "timed_steps": len(intervals), "warmup_s": warmup,
                       "losses": [round(loss, 5) for loss in losses],
                       "load_during": sum(loads) / len(loads),
                       "train_rss_mib": max_rss_mib()}
    del optimizer, ema
    # DDIM sampling, as diffusers' DDIMPipeline loops (256 images at once).
    unet.eval()
    ddim = DDIMScheduler(**schedule, clip_sample=True)
    ddim.set_timesteps(args.sample_steps)
    samples = torch.randn((args.images, 1, 28, 28), generator=generator)
    with torch.no_grad():
        start = time.perf_counter()
        unet(samples, ddim.timesteps[0])
        first = time.perf_counter() - start
        load = os.getloadavg()[0]
        start, cpu0 = time.perf_counter(), cpu_seconds()
        for t in ddim.timesteps:
            output = unet(samples, t).sample
            samples = ddim.step(output, t, samples, eta=0.0).prev_sample
        result["sample"] = {"seconds": time.perf_counter() - start,
                            "cpu_s": cpu_seconds() - cpu0, "first_step_s": first,
                            "load": load, "rss_mib": max_rss_mib(),
                            "images": args.images, "steps": args.sample_steps}
    result["flops"] = count_flops_torch(unet)
    result["load_end"] = os.getloadavg()[0]
    emit(result)


def count_flops_torch(unet):
    """Forward FLOPs per image of a diffusers UNet, by `FlopCounterMode`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(torch.zeros((1, 1, 28, 28)), torch.tensor([500]))
    return counter.get_total_flops()


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
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            network(inputs)
        result["flop_counter"] = counter.get_total_flops()
    emit(result)


def analytic_flops(network, inputs):
    """FLOPs (2 per multiply-add) of one forward pass, from layer shapes.

    Counts convolutions, transposed convolutions, dense layers and
    multi-head attention (projections, scores, weighted sums); normalization,
    activations and additions (a few percent) are left out. Each counted
    layer's `call` is wrapped for one eager forward pass.
    """
    import math

    import keras

    counts = {"conv": 0, "dense": 0, "attention": 0}

    def conv(layer, args, out):
        kh, kw, cin, cout = layer.kernel.shape
        return 2 * math.prod(out.shape[:-1]) * kh * kw * cin * cout

    def conv_transpose(layer, args, out):
        kh, kw, cout, cin = layer.kernel.shape
        return 2 * math.prod(args[0].shape[:-1]) * kh * kw * cin * cout

    def dense(layer, args, out):
        return 2 * math.prod(args[0].shape[:-1]) * math.prod(layer.kernel.shape)

    def attention(layer, args, out):
        query, value = args[0], args[1]
        batch, queries, channels = query.shape
        keys = value.shape[1]
        heads, key_dim = layer.num_heads, layer.key_dim
        value_dim = layer.value_dim or key_dim
        out_channels = out.shape[-1]
        return 2 * batch * (
            queries * channels * heads * key_dim          # query projection
            + keys * channels * heads * key_dim           # key projection
            + keys * channels * heads * value_dim         # value projection
            + queries * keys * heads * (key_dim + value_dim)  # scores, sums
            + queries * heads * value_dim * out_channels  # output projection
        )

    kinds = ((keras.layers.MultiHeadAttention, "attention", attention),
             (keras.layers.Conv2DTranspose, "conv", conv_transpose),
             (keras.layers.Conv2D, "conv", conv),
             (keras.layers.Dense, "dense", dense))
    wrapped = []
    for layer in network._flatten_layers(include_self=False, recursive=True):
        for cls, kind, formula in kinds:
            if isinstance(layer, cls):
                wrapped.append(layer)
                layer.call = _counting(layer, layer.call, kind, formula, counts)
                break
    try:
        network(inputs)
    finally:
        for layer in wrapped:
            del layer.call
    counts["total"] = sum(counts.values())
    return counts


def _counting(layer, call, kind, formula, counts):
    def counted(*args, **kwargs):
        out = call(*args, **kwargs)
        counts[kind] += formula(layer, args, out)
        return out

    return counted


WORKERS = {"peak": worker_peak, "train": worker_train, "sample": worker_sample,
           "diffusers": worker_diffusers, "flops": worker_flops}


# ---------------------------------------------------------------- driver


def worker_command(kind, settings, backend=None, variants=None):
    """The command line (for the table) and argv of one worker."""
    argv = ["--worker", kind, "--batch", str(settings["batch"]),
            "--steps", str(settings["steps"]), "--rounds", str(settings["rounds"]),
            "--images", str(settings["images"]),
            "--sample-steps", str(settings["sample_steps"]),
            "--ab-sample-steps", str(settings["ab_sample_steps"]),
            "--memory-images", str(settings["memory_images"]),
            "--memory-steps", str(settings["memory_steps"])]
    if variants:
        argv += ["--variants", variants]
    env = {}
    if backend:
        env["KERAS_BACKEND"] = backend
    relevant = {"peak": [], "flops": [],
                "train": ["--batch", "--steps", "--rounds", "--variants"],
                "sample": ["--images", "--sample-steps", "--ab-sample-steps",
                           "--memory-images", "--memory-steps"],
                "diffusers": ["--batch", "--steps", "--rounds", "--images",
                              "--sample-steps"]}[kind]
    shown = ["--worker", kind]
    for index in range(2, len(argv), 2):
        if argv[index] in relevant:
            shown += argv[index:index + 2]
    prefix = "".join(f"{key}={value} " for key, value in env.items())
    return argv, env, prefix + "python benchmarks/performance.py " + " ".join(shown)


def run_worker(kind, settings, data, backend=None, variants=None, extra_env=None,
               timeout=1800):
    argv, env, command = worker_command(kind, settings, backend, variants)
    if data:
        argv += ["--data", data]
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env,
                    **(extra_env or {}))
    if extra_env:
        command = "".join(f"{k}={v} " for k, v in extra_env.items()) + command
    label = command.replace("python benchmarks/performance.py ", "")
    print(f"[{time.strftime('%H:%M:%S')}] load {os.getloadavg()[0]:.1f}: "
          f"{label}", flush=True)
    start = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, os.path.abspath(__file__)] + argv,
                             env=full_env, capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s", "command": command}
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"    failed: {tail}", flush=True)
        return {"error": tail[:300], "command": command}
    result = json.loads(lines[-1][len("RESULT "):])
    result["command"] = command
    result["wall_s"] = time.perf_counter() - start
    return result


def machine_info():
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    isa = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
           if f" {name}" in flags]
    return {"cpu": model, "cores": os.cpu_count(), "isa": isa,
            "python": platform.python_version()}


def versions():
    from importlib import metadata

    found = {}
    for name in ("keras", "tensorflow", "jax", "jaxlib", "torch", "diffusers",
                 "numpy", "keras-diffusion"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings, for development")
    parser.add_argument("--out", default=None,
                        help="Markdown file to write (default: "
                             "docs/performance.md; --quick: none)")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="MNIST IDX directory (random images if absent)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--skip", default="",
                        help="comma list of parts to skip: train, sample, "
                             "diffusers, omp")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    for flag in ("batch", "steps", "rounds", "images", "sample-steps",
                 "ab-sample-steps", "memory-images", "memory-steps"):
        parser.add_argument(f"--{flag}", type=int, default=None)
    parser.add_argument("--variants", default="f32")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    for key in settings:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    if args.worker:
        if (args.worker in ("train", "sample")
                and os.environ.get("KERAS_BACKEND") == "jax"):
            # As `kd` does: one JAX CPU device per core, before JAX starts.
            from keras_diffusion.utils.jax_cpu import split_cpu_into_devices

            split_cpu_into_devices()
        for key, value in settings.items():
            setattr(args, key, value)
        WORKERS[args.worker](args)
        return
    out = args.out if args.out or args.quick else os.path.join(ROOT, "docs",
                                                                "performance.md")
    backends = [b for b in args.backends.split(",") if b]
    skip = set(args.skip.split(","))
    data = args.data if os.path.isdir(args.data) else None
    # Workers inherit OMP_WAIT_POLICY, by default unset: OpenMP's spinning
    # threads, what users get. The "omp" pair measures both policies.
    report = {"machine": machine_info(), "versions": versions(),
              "settings": settings, "quick": args.quick,
              "load_start": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M"),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY",
                                                "unset (OpenMP's default, ACTIVE)")}
    start = time.perf_counter()
    report["peak_start"] = run_worker("peak", settings, data)
    report["flops"] = run_worker("flops", settings, data, backend="torch")
    if "train" not in skip:
        report["train"] = {b: run_worker("train", settings, data, backend=b,
                                         variants=TRAIN_VARIANTS[b])
                           for b in backends}
    if "diffusers" not in skip:
        report["diffusers"] = run_worker("diffusers", settings, data,
                                         backend="torch")
    if "sample" not in skip:
        report["sample"] = {b: run_worker("sample", settings, data, backend=b)
                            for b in backends}
    if "omp" not in skip and "torch" in backends:
        # PyTorch's default OpenMP waiting (active spinning) against PASSIVE,
        # back to back, a few steps each.
        few = dict(settings, steps=settings["omp_steps"], rounds=1)
        report["omp"] = {
            policy: run_worker("train", few, data, backend="torch",
                               extra_env={"OMP_WAIT_POLICY": policy})
            for policy in ("ACTIVE", "PASSIVE")
        }
    report["peak_end"] = run_worker("peak", settings, data)
    report["load_end"] = os.getloadavg()
    report["total_s"] = time.perf_counter() - start
    markdown = render(report)
    print(markdown)
    raw = os.path.join(ROOT, "runs", "performance.json")
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    with open(raw + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(raw + ".tmp", raw)
    if out:
        write_report(out, markdown)
        print(f"wrote {out} (raw figures: {raw})")


BEGIN = "<!-- begin: generated by benchmarks/performance.py -->"
END = "<!-- end: generated by benchmarks/performance.py -->"


def write_report(path, markdown):
    """Replaces the generated part of `path` (between the markers), keeping
    the hand-written text around it; a new file gets a title."""
    text = f"# Performance\n\n{BEGIN}\n{END}\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if BEGIN not in text or END not in text:
            text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path + ".tmp", "w") as f:
        f.write(f"{head}{BEGIN}\n{markdown}{END}{tail}")
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------- report


def _fmt(value, digits=0, suffix=""):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def _ok(result):
    return isinstance(result, dict) and "error" not in result


def render(report):
    """The generated Markdown: every figure with its command, and the ratios."""
    lines = []
    add = lines.append
    machine, settings = report["machine"], report["settings"]
    load0, load1 = report["load_start"], report["load_end"]
    peak0, peak1 = report.get("peak_start", {}), report.get("peak_end", {})
    peaks = [p["f32_peak_gflops"] for p in (peak0, peak1) if _ok(p)]
    peak = max(peaks) if peaks else None
    flops = report.get("flops", {})
    ours_fwd = flops.get("analytic", {}).get("total") if _ok(flops) else None
    diffusers = report.get("diffusers", {})
    theirs_fwd = diffusers.get("flops") if _ok(diffusers) else None
    batch = settings["batch"]

    add(f"Run of {report['started']}"
        + (" with `--quick` (tiny settings: not figures to quote)"
           if report["quick"] else "")
        + f", {report['total_s'] / 60:.1f} minutes.")
    add("")
    add("| machine | |")
    add("| --- | --- |")
    add(f"| CPU | {machine['cpu']}, {machine['cores']} cores "
        f"({', '.join(machine['isa'])}); shared with other jobs |")
    add(f"| load average (1, 5, 15 min) at start | "
        f"{', '.join(f'{x:.2f}' for x in load0)} |")
    add(f"| load average at end | {', '.join(f'{x:.2f}' for x in load1)} |")
    if peaks:
        add(f"| float32 matmul peak, start / end (GFLOP/s) | "
            + " / ".join(_fmt(p["f32_peak_gflops"], 1) for p in (peak0, peak1)
                         if _ok(p))
            + f" ({peak0.get('n')}x{peak0.get('n')}, the faster of torch and "
            "NumPy; `--worker peak`) |")
        add(f"| bfloat16 matmul, start / end (GFLOP/s) | "
            + " / ".join(_fmt(p["torch_bf16_gflops"], 1) for p in (peak0, peak1)
                         if _ok(p)) + " (torch) |")
    add(f"| `OMP_WAIT_POLICY` | {report['omp_wait_policy']} in every worker |")
    versions = report["versions"]
    add("| versions | " + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f", Python {machine['python']} |")
    add("")

    # Training.
    add(f"### Training throughput (batch {batch}, 28x28)")
    add("")
    add("Steady state: the first step of each `fit` call (or round) is not "
        f"timed; {settings['rounds']} rounds of {settings['steps']} steps, the "
        "A/B variants of a backend taking turns in one process. GFLOP/s is 3x "
        "the forward FLOPs per image times images/s.")
    add("")
    add("| model | backend | images/s | images per CPU-second | GFLOP/s | "
        "% of matmul peak | peak RSS (MiB) | parameters | load during | command |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    train_rates = {}
    for backend, result in report.get("train", {}).items():
        if not _ok(result):
            add(f"| ours | {backend} | failed: {result.get('error')} | | | | | | | "
                f"`{result.get('command')}` |")
            continue
        # The library's default: under JAX on several cores, data-parallel
        # over one CPU device per core (`cores`).
        base = result["variants"].get("cores", result["variants"]["f32"])
        # Peak RSS is taken once per process, after the first variant (f32).
        base = dict(base, train_rss_mib=result["variants"]["f32"].get("train_rss_mib"))
        train_rates[backend] = base["images_per_s"]
        add(_train_row("ours (recipe `ddpm`)", backend, base, result, ours_fwd,
                       peak))
    if _ok(diffusers):
        train = diffusers["train"]
        train_rates["diffusers"] = train["images_per_s"]
        add(_train_row("diffusers `UNet2DModel`", "torch", train,
                       dict(diffusers, load_during=train["load_during"]),
                       theirs_fwd, peak))
    elif diffusers:
        add(f"| diffusers | torch | failed: {diffusers.get('error')} | | | | | | | |")
    add("")

    # Sampling.
    add(f"### Sampling: DDIM, {settings['sample_steps']} steps, "
        f"{settings['images']} images in one batch")
    add("")
    add("| model | backend | mode | seconds | images/s | first step (s) | "
        "peak RSS (MiB) | load | command |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    sample_times = {}
    for mode in ("compiled", "eager"):
        for backend, result in report.get("sample", {}).items():
            if not _ok(result):
                if mode == "compiled":
                    add(f"| ours | {backend} | | failed: {result.get('error')} "
                        "| | | | | |")
                continue
            figures = result[mode]
            sample_times[(backend, mode)] = figures["seconds"]
            label = {"compiled": _COMPILED[backend], "eager": _EAGER[backend]}[mode]
            add(f"| ours | {backend} | {label} | {figures['seconds']:.1f} | "
                f"{result['images'] / figures['seconds']:.1f} | "
                f"{figures['first_step_s']:.1f} | {figures['rss_mib']:,.0f} | "
                f"{figures['load']:.1f} | `{result['command']}` |")
    if _ok(diffusers):
        figures = diffusers["sample"]
        sample_times[("diffusers", "no_grad")] = figures["seconds"]
        add(f"| diffusers | torch | `DDIMScheduler`, `torch.no_grad` | "
            f"{figures['seconds']:.1f} | "
            f"{figures['images'] / figures['seconds']:.1f} | "
            f"{figures['first_step_s']:.1f} | {figures['rss_mib']:,.0f} | "
            f"{figures['load']:.1f} | `{diffusers['command']}` |")
    add("")

    # Memory.
    add("### Peak memory (`ru_maxrss` of the worker process, MiB)")
    add("")
    add(f"| model | backend | model loaded | training, batch {batch} | "
        f"sampling {settings['images']} at once | sampling "
        f"{settings['memory_images']:,} (`generate`'s batches of 256, "
        f"{settings['memory_steps']} steps) |")
    add("| --- | --- | --- | --- | --- | --- |")
    for backend in report.get("sample", {}):
        sample = report["sample"][backend]
        train = report.get("train", {}).get(backend, {})
        train_rss = (train["variants"]["f32"].get("train_rss_mib")
                     if _ok(train) else None)
        if _ok(sample):
            add(f"| ours | {backend} | {sample['loaded_rss_mib']:,.0f} | "
                f"{_fmt(train_rss)} | {sample['compiled']['rss_mib']:,.0f} | "
                f"{sample['memory']['rss_mib']:,.0f} |")
    if _ok(diffusers):
        add(f"| diffusers | torch | | {diffusers['train']['train_rss_mib']:,.0f} | "
            f"{diffusers['sample']['rss_mib']:,.0f} | |")
    add("")

    # FLOPs.
    add("### Arithmetic per image")
    add("")
    add("| network | parameters | forward GFLOP, from layer shapes | forward "
        "GFLOP, `FlopCounterMode` | training GFLOP (3x forward) | command |")
    add("| --- | --- | --- | --- | --- | --- |")
    if _ok(flops):
        parts = flops["analytic"]
        add(f"| ours (recipe `ddpm`) | {flops['params']:,} | "
            f"{parts['total'] / 1e9:.4f} (conv {parts['conv'] / 1e9:.4f}, "
            f"attention {parts['attention'] / 1e9:.4f}, dense "
            f"{parts['dense'] / 1e9:.4f}) | "
            f"{_fmt(flops.get('flop_counter', 0) / 1e9, 4)} | "
            f"{3 * parts['total'] / 1e9:.4f} | `{flops['command']}` |")
    if _ok(diffusers):
        add(f"| diffusers `UNet2DModel` | {diffusers['params']:,} | | "
            f"{diffusers['flops'] / 1e9:.4f} | {3 * diffusers['flops'] / 1e9:.4f} | "
            f"`{diffusers['command']}` |")
    add("")

    # Ratios.
    add("### Ratios")
    add("")
    add("| ratio | value |")
    add("| --- | --- |")
    ours = {b: r for b, r in train_rates.items() if b in BACKENDS}
    if len(ours) > 1:
        fast = max(ours, key=ours.get)
        slow = min(ours, key=ours.get)
        add(f"| training, fastest / slowest backend ({fast} / {slow}) | "
            f"{ours[fast] / ours[slow]:.2f} |")
    if ours and "diffusers" in train_rates:
        for backend, rate in ours.items():
            add(f"| training, ours on {backend} / diffusers (images/s) | "
                f"{rate / train_rates['diffusers']:.2f} |")
    compiled = {b: sample_times[(b, "compiled")] for b in BACKENDS
                if (b, "compiled") in sample_times}
    if len(compiled) > 1:
        fast = min(compiled, key=compiled.get)
        slow = max(compiled, key=compiled.get)
        add(f"| sampling compiled, slowest / fastest backend time ({slow} / "
            f"{fast}) | {compiled[slow] / compiled[fast]:.2f} |")
    if ("diffusers", "no_grad") in sample_times:
        for backend, seconds in compiled.items():
            add(f"| sampling, diffusers time / ours compiled on {backend} | "
                f"{sample_times[('diffusers', 'no_grad')] / seconds:.2f} |")
    for backend, seconds in compiled.items():
        if (backend, "eager") in sample_times:
            add(f"| sampling on {backend}, eager time / compiled time | "
                f"{sample_times[(backend, 'eager')] / seconds:.2f} |")
    add("")

    # Before and after.
    add("### Optimizations, before and after")
    add("")
    add("Each pair ran in one process, interleaved (the A/B variants of the "
        "training workers above), except `OMP_WAIT_POLICY`, which OpenMP reads "
        "at start-up: two processes back to back.")
    add("")
    add("| change | backend | measure | before | after | after / before | "
        "loss curve vs baseline | command |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- |")
    train = report.get("train", {})
    jax_train = train.get("jax", {})
    if _ok(jax_train) and "transpose" in jax_train["variants"]:
        before = jax_train["variants"]["transpose"]
        after = jax_train["variants"]["f32"]
        add(_ab_row(_AB_CHANGES["transpose"], "jax", "training images/s",
                    before, after,
                    jax_train["command"], loss=before["loss_rel_diff"]))
    if _ok(jax_train) and "cores" in jax_train["variants"]:
        after = jax_train["variants"]["cores"]
        add(_ab_row("JAX: one CPU device per core, training data-parallel "
                    "over them (was one device)", "jax", "training images/s",
                    jax_train["variants"]["f32"], after, jax_train["command"],
                    loss=after["loss_rel_diff"]))
    torch_train = train.get("torch", {})
    for variant in ("kerasgn", "kerasconv"):
        if _ok(torch_train) and variant in torch_train["variants"]:
            before = torch_train["variants"][variant]
            add(_ab_row(_AB_CHANGES[variant], "torch", "training images/s",
                        before, torch_train["variants"]["f32"],
                        torch_train["command"], loss=before["loss_rel_diff"]))
    if _ok(jax_train) and "noema" in jax_train["variants"]:
        add(_ab_row("(diagnostic) AdamW without the weights' EMA", "jax",
                    "training images/s", jax_train["variants"]["f32"],
                    jax_train["variants"]["noema"], jax_train["command"],
                    note="before: with EMA (the recipe); not a change"))
    for backend, sample in report.get("sample", {}).items():
        if not (_ok(sample) and "sampling_ab" in sample):
            continue
        for ab in sample["sampling_ab"]:
            before = {"images_per_s": ab["before_images_per_s"]}
            after = {"images_per_s": ab["after_images_per_s"]}
            add(_ab_row(_AB_CHANGES[ab["variant"]], backend,
                        f"sampling images/s (DDIM {ab['steps']} steps, compiled)",
                        before, after, sample["command"],
                        note=f"samples differ by at most {ab['max_abs_diff']:.1e}"))
    omp = report.get("omp", {})
    if _ok(omp.get("ACTIVE")) and _ok(omp.get("PASSIVE")):
        before = omp["ACTIVE"]["variants"]["f32"]
        after = omp["PASSIVE"]["variants"]["f32"]
        add(f"| `OMP_WAIT_POLICY=PASSIVE` (default: threads spin while waiting) | "
            f"torch | training images/s ({before['timed_steps']} steps) | "
            f"{before['images_per_s']:.1f} | {after['images_per_s']:.1f} | "
            f"{after['images_per_s'] / before['images_per_s']:.2f} | | "
            f"`{omp['ACTIVE']['command']}`, then `PASSIVE` |")
    tf_train = train.get("tensorflow", {})
    if _ok(tf_train) and "noprefetch" in tf_train["variants"]:
        before = tf_train["variants"]["noprefetch"]
        after = tf_train["variants"]["f32"]
        add(_ab_row("`prefetch` in the input pipeline", "tensorflow",
                    "training images/s", before, after, tf_train["command"],
                    note=f"input alone: {before['input_ms_per_batch']:.1f} ms "
                         f"per batch without prefetch"))
    for backend, result in train.items():
        if _ok(result) and "bf16" in result["variants"]:
            before = result["variants"]["f32"]
            after = result["variants"]["bf16"]
            add(_ab_row("`mixed_bfloat16` dtype policy (from float32)", backend,
                        "training images/s", before, after, result["command"],
                        loss=after["loss_rel_diff"]))
    for backend, seconds in compiled.items():
        if (backend, "eager") in sample_times:
            eager = sample_times[(backend, "eager")]
            add(f"| compiled sampling step ({_COMPILED[backend]}) | {backend} | "
                f"sampling seconds ({settings['images']} images, "
                f"{settings['sample_steps']} steps) | {eager:.1f} | {seconds:.1f} | "
                f"{seconds / eager:.2f} | | "
                f"`{report['sample'][backend]['command']}` |")
    add("")
    return "\n".join(lines) + "\n"


# What each before/after pair changed, by the variant that undoes it.
_AB_CHANGES = {
    "transpose": "Upsample as a sub-pixel convolution (was XLA's transposed "
                 "convolution)",
    "kerasgn": "`GroupNorm` through `torch.nn.functional.group_norm` (was "
               "Keras' reshape/moments arithmetic)",
    "kerasconv": "`Conv2D` and `Upsample` call torch on channels-first views "
                 "(was Keras' convolutions, which copy the layout each call)",
    "onedevice": "JAX: the compiled sampling step splits the batch among the "
                 "CPU devices (was one device)",
}


# PyTorch has no compiled path here (no graph capture): both of its modes
# are the same eager step under `torch.no_grad`.
_COMPILED = {"tensorflow": "`tf.function`", "jax": "`jax.jit`",
             "torch": "`torch.no_grad`, not compiled"}
_EAGER = {"tensorflow": "eager", "jax": "eager (op by op)",
          "torch": "eager, `torch.no_grad` (the same)"}


def _train_row(label, backend, figures, result, forward_flops, peak):
    rate = figures["images_per_s"]
    gflops = 3 * forward_flops * rate / 1e9 if forward_flops else None
    share = 100 * gflops / peak if gflops and peak else None
    return (f"| {label} | {backend} | {rate:.1f} | "
            f"{_fmt(figures.get('images_per_cpu_s'), 1)} | {_fmt(gflops, 1)} | "
            f"{_fmt(share, 1, '%')} | {_fmt(figures.get('train_rss_mib'))} | "
            f"{result['params']:,} | {result['load_during']:.1f} | "
            f"`{result['command']}` |")


def _ab_row(change, backend, measure, before, after, command, loss=None,
            note=""):
    ratio = after["images_per_s"] / before["images_per_s"]
    loss_text = "" if loss is None else f"{100 * loss:.3f}% mean difference"
    if note:
        loss_text = (loss_text + "; " if loss_text else "") + note
    return (f"| {change} | {backend} | {measure} | {before['images_per_s']:.1f} | "
            f"{after['images_per_s']:.1f} | {ratio:.2f} | {loss_text} | "
            f"`{command}` |")


if __name__ == "__main__":
    main()
