"""Training throughput (images/second) of the default UNet per backend.

    python benchmarks/train_throughput.py [--batch-size 128] [--steps 30]

Each backend runs in its own subprocess (Keras picks its backend at import),
trains the default `kd train ddpm` model with `model.fit` on random images
for a few warm-up steps, then times `--steps` more, and prints a table.
Under JAX it trains as `kd train` does: data-parallel over one CPU device
per core (`keras_diffusion/utils/jax_cpu.py`). docs/performance.md has the
fuller comparison (`benchmarks/performance.py`).
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
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
                  "params": model.network.count_params(),
                  "devices": replicas.num_replicas if replicas else 1}))
"""


def measure(backend, batch_size, steps, recipe):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(batch_size), str(steps), recipe],
        env=env, capture_output=True, text=True,
    )
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--recipe", default="ddpm")
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    args = parser.parse_args()
    print(f"recipe {args.recipe}, batch {args.batch_size}, {args.steps} timed steps")
    print("| backend | images/s | parameters | devices |")
    print("| --- | --- | --- | --- |")
    for backend in args.backends.split(","):
        result = measure(backend, args.batch_size, args.steps, args.recipe)
        if "error" in result:
            print(f"| {backend} | failed: {result['error']} | |")
        else:
            print(f"| {backend} | {result['images_per_second']:.0f} | "
                  f"{result['params']:,} | {result['devices']} |")


if __name__ == "__main__":
    main()
