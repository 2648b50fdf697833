"""Training throughput (images/second) of the default UNet per backend.

    python benchmarks/train_throughput.py [--batch-size 128] [--steps 30]
        [--busy-jobs 1] [--env OMP_WAIT_POLICY=PASSIVE]

Each backend runs in its own subprocess (Keras picks its backend at import),
trains the default `kd train ddpm` model with `model.fit` on random images
for a few warm-up steps, then times `--steps` more, and prints a table.
Under JAX it trains as `kd train` does: data-parallel over one CPU device
per core (`keras_diffusion/utils/jax_cpu.py`), and under PyTorch OpenMP's
waiting policy is chosen as `kd` chooses it (`cli/openmp.py`; the table
says which it was). docs/performance.md has the
fuller comparison (`benchmarks/performance.py`).

`--busy-jobs N` runs N other CPU-bound processes (a pure Python loop each)
beside every measurement, to see how a backend holds up on a loaded
machine; `--env KEY=VALUE` sets a variable for the workers (such as an
OpenMP setting to compare).
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
from keras_diffusion_cli.openmp import choose_wait_policy
if os.environ["KERAS_BACKEND"] == "torch":
    choose_wait_policy()  # as `kd` does, before PyTorch loads
from keras_diffusion.utils import jax_cpu
if os.environ["KERAS_BACKEND"] == "jax":
    jax_cpu.split_cpu_into_devices()  # as `kd` does, before JAX starts
import numpy as np
import keras
from keras_diffusion.app.distribution import cpu_data_parallel
from keras_diffusion.app.recipes import build_model

batch_size, steps, recipe = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with cpu_data_parallel(batch_size) as replicas:
    model = build_model(recipe)
    images = np.random.default_rng(0).uniform(-1, 1, (batch_size * 4, 28, 28, 1))
    images = images.astype("float32")
    model.fit(images, batch_size=batch_size, epochs=1, steps_per_epoch=4, verbose=0)
    x = np.concatenate([images] * (steps // 4 + 1))[: batch_size * steps]
    start = time.perf_counter()
    model.fit(x, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
print(json.dumps({"images_per_second": batch_size * steps / seconds,
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                  "params": model.network.count_params(),
                  "devices": replicas.num_replicas if replicas else 1}))
"""


BUSY_LOOP = "while True: pass"


def measure(backend, batch_size, steps, recipe, busy_jobs=0, extra_env=None):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               **(extra_env or {}))
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
            for _ in range(busy_jobs)]
    try:
        out = subprocess.run(
            [sys.executable, "-c", WORKER, str(batch_size), str(steps), recipe],
            env=env, capture_output=True, text=True,
        )
    finally:
        for job in busy:
            job.kill()
            job.wait()
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--recipe", default="ddpm")
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--busy-jobs", type=int, default=0,
                        help="CPU-bound processes to run beside each measurement.")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="An environment variable for the workers (repeatable).")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    print(f"recipe {args.recipe}, batch {args.batch_size}, {args.steps} timed steps, "
          f"{args.busy_jobs} busy jobs beside, env {extra_env or 'as is'}")
    print("| backend | images/s | parameters | devices | OMP_WAIT_POLICY |")
    print("| --- | --- | --- | --- | --- |")
    for backend in args.backends.split(","):
        result = measure(backend, args.batch_size, args.steps, args.recipe,
                         args.busy_jobs, extra_env)
        if "error" in result:
            print(f"| {backend} | failed: {result['error']} | | | |")
        else:
            print(f"| {backend} | {result['images_per_second']:.0f} | "
                  f"{result['params']:,} | {result['devices']} | "
                  f"{result['omp_wait_policy'] or 'unset'} |")


if __name__ == "__main__":
    main()
