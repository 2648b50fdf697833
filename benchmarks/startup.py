"""Start-up latency of `kd`: help, flag errors, sampling, training's first step.

    python benchmarks/startup.py [--backends tensorflow jax torch] [--repeats 3]
        [--data ../shared/data/mnist] [--skip-train]
    python benchmarks/startup.py --stages    # where one `kd sample` goes

Every figure is the median of `--repeats` fresh processes, run one at a
time (run it on an idle machine):

- `kd --help` and `kd sample --nmu 3` (a mistyped flag), and which
  frameworks they import (none should be);
- `kd sample --num 16` (the shipped `cfg`): cold, each run with a new, empty
  JAX compilation cache (`JAX_COMPILATION_CACHE_DIR`; TensorFlow and
  PyTorch keep none), and warm, runs after one that filled it;
- training start-up: wall time from the process's start to the end of the
  first optimizer step of `kd train ddpm --batch-size 64`, cold and warm
  as above. The child runs what `kd train` runs (`train()` after the CLI's
  JAX set-up), with a callback that notes the time of the first step.

Prints a Markdown table (docs/performance.md#start-up). `--stages` instead
times the stages of sampling in one process per backend (no compilation
cache): importing Keras, then the package, `load_model("cfg")`, and two
calls of `sample(num_images=16, label=3)`, the first with its compilation.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

FRAMEWORKS = ("tensorflow", "jax", "torch")

# Run in the child: `kd`'s entry point in-process, then the frameworks loaded.
CLI_CHILD = r"""
import sys
from keras_diffusion_cli.main import cli
try:
    cli(sys.argv[1:], standalone_mode=True)
except SystemExit:
    pass
print("LOADED", ",".join(m for m in ("tensorflow", "jax", "torch") if m in sys.modules))
"""

# Run in the child: `kd train ddpm`'s work, timing the first optimizer step.
TRAIN_CHILD = r"""
import json, os, sys, time
from keras_diffusion.utils.jax_cpu import split_cpu_into_devices
from keras_diffusion.utils.jax_cache import enable_compilation_cache
if os.environ.get("KERAS_BACKEND") == "jax":
    split_cpu_into_devices()  # as `kd` does
enable_compilation_cache()
import keras
from keras_diffusion.app.train import train

class FirstStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if not hasattr(self, "first"):
            self.first = time.time()

first_step = FirstStep()
data, out_dir = sys.argv[1], sys.argv[2]
train("ddpm", data=data, max_steps=1, batch_size=64, out_dir=out_dir,
      sample_every=0, verbose=0, callbacks=[first_step])
print("FIRST_STEP", json.dumps(first_step.first))
"""


# Run in the child: the stages of `kd sample`, timed in one process.
STAGES_CHILD = r"""
import json, tempfile, time
start = time.perf_counter()
times = {}
def lap(name):
    global start
    now = time.perf_counter()
    times[name] = now - start
    start = now
import keras; lap("import keras")
import keras_diffusion; lap("import keras_diffusion")
model = keras_diffusion.load_model("cfg"); lap("load_model cfg")
from keras_diffusion.app.sample import sample
out = tempfile.mktemp(suffix=".png")
sample(model=model, num_images=16, label=3, out=out, progress=False)
lap("first sample() (with compiling)")
sample(model=model, num_images=16, label=3, out=out, progress=False)
lap("second sample()")
print("STAGES", json.dumps(times))
"""


def stages(backends):
    """Prints the stage times of sampling, one column per backend."""
    columns = {}
    for backend in backends:
        _, _, stdout = run_child(STAGES_CHILD, [], backend, tempfile.mkdtemp())
        columns[backend] = json.loads(stdout.rsplit("STAGES", 1)[-1])
    print("| stage | " + " | ".join(backends) + " |")
    print("| --- |" + " --- |" * len(backends))
    for name in columns[backends[0]]:
        print(f"| {name} | " + " | ".join(f"{columns[b][name]:.2f}" for b in backends)
              + " |")


def run_child(code, args, backend, cache_dir):
    """Runs a child Python; returns `(start, seconds, stdout)`: its start
    (`time.time()`) and wall time."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               JAX_COMPILATION_CACHE_DIR=cache_dir)
    env.pop("KD_JAX_CACHE", None)
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code, *args], env=env,
                         capture_output=True, text=True)
    seconds = time.time() - start
    if out.returncode:
        raise RuntimeError(f"{backend}: {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return start, seconds, out.stdout


def run_cli(args, backend, cache_dir):
    """`(seconds, frameworks loaded)` of `kd ARGS` in a fresh process."""
    _, seconds, stdout = run_child(CLI_CHILD, args, backend, cache_dir)
    return seconds, stdout.rsplit("LOADED", 1)[-1].strip()


def first_step_seconds(backend, data, cache_dir):
    """Seconds from a fresh process's start to the end of its first
    training step."""
    start, _, stdout = run_child(TRAIN_CHILD, [data, tempfile.mkdtemp()], backend,
                                 cache_dir)
    return json.loads(stdout.rsplit("FIRST_STEP", 1)[-1]) - start


def cold_and_warm(seconds_with_cache, repeats):
    """Median `(cold, warm)` of `seconds_with_cache(cache_dir)`: cold runs
    each with a new, empty cache; warm runs after one that filled theirs."""
    cold = [seconds_with_cache(tempfile.mkdtemp()) for _ in range(repeats)]
    warm_cache = tempfile.mkdtemp()
    seconds_with_cache(warm_cache)  # fills the cache
    warm = [seconds_with_cache(warm_cache) for _ in range(repeats)]
    return statistics.median(cold), statistics.median(warm)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(FRAMEWORKS),
                        choices=FRAMEWORKS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "mnist"))
    parser.add_argument("--skip-train", action="store_true",
                        help="Leave out the training start-up (the slowest part).")
    parser.add_argument("--stages", action="store_true",
                        help="Time the stages of sampling instead (seconds).")
    args = parser.parse_args(argv)
    if args.stages:
        return stages(args.backends)

    rows = []
    sample_args = ["sample", "--num", "16",
                   "--out", os.path.join(tempfile.mkdtemp(), "s.png")]
    for backend in args.backends:
        row = {"backend": backend}
        loaded = set()
        for name, kd_args in (("help", ["--help"]),
                              ("flag_error", ["sample", "--nmu", "3"])):
            runs = [run_cli(kd_args, backend, tempfile.mkdtemp())
                    for _ in range(args.repeats)]
            row[name] = statistics.median(seconds for seconds, _ in runs)
            loaded.update(frameworks for _, frameworks in runs if frameworks)
        row["imports"] = ", ".join(sorted(loaded)) or "none"
        row["sample_cold"], row["sample_warm"] = cold_and_warm(
            lambda cache: run_cli(sample_args, backend, cache)[0], args.repeats)
        if not args.skip_train:
            row["train_cold"], row["train_warm"] = cold_and_warm(
                lambda cache: first_step_seconds(backend, args.data, cache),
                args.repeats)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    print(f"Median of {args.repeats} fresh processes each, seconds.\n")
    print("| backend | `kd --help` | flag error | frameworks they import | "
          "`kd sample --num 16` cold | warm | training's first step cold | warm |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        train = (f"{row['train_cold']:.1f} | {row['train_warm']:.1f}"
                 if "train_cold" in row else "- | -")
        print(f"| {row['backend']} | {row['help']:.2f} | {row['flag_error']:.2f} | "
              f"{row['imports']} | {row['sample_cold']:.1f} | {row['sample_warm']:.1f} | "
              f"{train} |")


if __name__ == "__main__":
    main()
