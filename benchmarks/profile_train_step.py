"""Where a training step (or a sampling step) of recipe `ddpm` spends its time.

    KERAS_BACKEND=jax python benchmarks/profile_train_step.py --profile
    KERAS_BACKEND=jax python benchmarks/profile_train_step.py --one-device
    KERAS_BACKEND=torch python benchmarks/profile_train_step.py --profile --before kerasgn
    KERAS_BACKEND=torch python benchmarks/profile_train_step.py --sampling --profile
    KERAS_BACKEND=torch python benchmarks/profile_train_step.py --sampling --torch-compile
    taskset -c 0 python benchmarks/profile_train_step.py     # one core

Prints images/s and images per CPU-second of `model.fit` (batch 128, after
a warm-up), and CPU cores kept busy (CPU time over wall time). With
`--profile`: under JAX, the XLA operations of the step from a
`jax.profiler` trace, and their total time over the step's wall time
(about 1 means they ran one at a time); under PyTorch, the
`torch.profiler` table of the most expensive kernels. This is how the two
optimizations in docs/performance.md were found: JAX's operations running
one at a time, and Keras' `GroupNormalization` arithmetic under PyTorch.

`--before VARIANT` runs the library as before one of the optimizations
(`performance_workers.as_before`: `kerasgn`, `kerasconv`, `transpose`,
`onedevice`). `--sampling` times compiled DDIM steps of the shipped
`ddpm` model on `--images` noise images instead of training; with
`--torch-compile` (PyTorch), also the same step through `torch.compile`.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--one-device", action="store_true",
                        help="JAX: train on one CPU device (as before the "
                             "one-device-per-core change)")
    parser.add_argument("--before", default=None,
                        choices=["kerasgn", "kerasconv", "transpose", "onedevice"],
                        help="run as before this optimization "
                             "(performance_workers.as_before)")
    parser.add_argument("--sampling", action="store_true",
                        help="time compiled DDIM steps instead of training")
    parser.add_argument("--images", type=int, default=256,
                        help="--sampling: batch of noise images")
    parser.add_argument("--torch-compile", action="store_true",
                        help="--sampling under PyTorch: also torch.compile "
                             "the step")
    args = parser.parse_args()

    import keras_diffusion.utils.jax_cpu as jax_cpu

    if os.environ.get("KERAS_BACKEND") == "jax" and not args.one_device:
        jax_cpu.split_cpu_into_devices()  # as `kd` does
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from performance_workers import as_before

    with as_before(args.before):
        if args.sampling:
            _time_sampling(args)
        else:
            _time_training(args)


def _time_training(args):
    import keras
    import numpy as np

    from keras_diffusion.app.distribution import cpu_data_parallel
    from keras_diffusion.app.recipes import build_model
    from keras_diffusion.utils.jax_cpu import usable_cores

    backend = keras.backend.backend()
    images = np.random.default_rng(0).uniform(
        -1, 1, (args.batch * args.steps, 28, 28, 1)).astype("float32")
    with cpu_data_parallel(args.batch) as replicas:
        model = build_model("ddpm", seed=0)
        model.fit(images[:2 * args.batch], batch_size=args.batch, verbose=0)
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(images, batch_size=args.batch, verbose=0)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{backend}, {replicas.num_replicas if replicas else 1} device(s), "
              f"{usable_cores()} usable core(s): "
              f"{len(images) / wall:.1f} images/s, "
              f"{len(images) / cpu:.1f} images per CPU-second, "
              f"{cpu / wall:.2f} cores busy")
        if args.profile:
            profile = {"jax": _profile_jax, "torch": _profile_torch}.get(backend)
            if profile is None:
                sys.exit(f"--profile: jax or torch, not {backend}")
            profile(model, images[:4 * args.batch], args.batch)


def _time_sampling(args):
    import keras
    import numpy as np

    from keras_diffusion.presets import load_model
    from performance_workers import first_step_args

    backend = keras.backend.backend()
    model = load_model("ddpm")
    sampler = model.make_sampler("ddim", 50)
    noise = np.random.default_rng(0).standard_normal(
        (args.images, 28, 28, 1)).astype("float32")
    step_args = first_step_args(sampler, noise)

    def time_steps(step_fn, label):
        start = time.perf_counter()
        first = keras.ops.convert_to_numpy(step_fn(*step_args).samples)
        warm = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            out = step_fn(*step_args)
        keras.ops.convert_to_numpy(out.samples)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{backend}, {label}: {wall / args.steps:.3f} s per DDIM step "
              f"of {args.images} images ({cpu / wall:.2f} cores busy; first "
              f"call {warm:.1f} s)")
        return first

    step_fn = model.step_function(sampler)
    expected = time_steps(step_fn, "compiled step")
    if args.profile and backend == "torch":
        from torch.profiler import profile

        with profile() as prof:
            for _ in range(2):
                step_fn(*step_args)
        print(prof.key_averages().table(sort_by="self_cpu_time_total",
                                        row_limit=12))
    if args.torch_compile:
        if backend != "torch":
            sys.exit(f"--torch-compile: torch, not {backend}")
        import torch

        compiled = torch.compile(step_fn)
        got = time_steps(compiled, "the step through torch.compile")
        print(f"largest difference from the step: {np.abs(got - expected).max():.1e}")


def _profile_jax(model, images, batch):
    import jax

    steps = len(images) // batch
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            model.fit(images, batch_size=batch, verbose=0)
        wall = time.perf_counter() - start
        path = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]
        with gzip.open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    per_kind, count = collections.Counter(), collections.Counter()
    for event in events:
        name = event.get("name", "")
        # XLA operations have lower-case HLO names (`ynn_fusion.37`,
        # `convolution`, `all-reduce`); runtime and Python events do not.
        is_op = re.fullmatch(r"[a-z][\w\-]*(\.\d+)?", name)
        if event.get("ph") != "X" or not is_op:
            continue
        kind = re.sub(r"\.\d+$", "", name)  # fusion.12 -> fusion
        per_kind[kind] += event.get("dur", 0) / 1e3
        count[kind] += 1
    total = sum(per_kind.values())
    print(f"\nXLA operations, {steps} steps traced: {total / steps:.0f} ms of "
          f"operations per step in {1e3 * wall / steps:.0f} ms of wall time "
          f"({total / 1e3 / wall:.2f} operations running at once on average)")
    for kind, ms in per_kind.most_common(12):
        print(f"{ms / steps:9.1f} ms/step  {count[kind] // steps:5d}x  {kind}")


def _profile_torch(model, images, batch):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.fit(images, batch_size=batch, verbose=0)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
