"""Performance in one run: our UNet on TensorFlow, JAX and PyTorch against
diffusers, and the before/after figures of each optimization.

    python benchmarks/performance.py            # full run, writes docs/performance.md
    python benchmarks/performance.py --quick    # tiny settings, prints the table
    python benchmarks/performance.py --no-render --json figures.json
    python benchmarks/performance_report.py runs/performance.json --out docs/performance.md

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

This file is the command: it starts the workers (`performance_workers.py`;
diffusers' reference in `performance_diffusers.py`, FLOP counts in
`flop_count.py`), saves their figures as JSON (`runs/performance.json`, or
`--json PATH`), then renders them into docs/performance.md
(`performance_report.py`, which re-renders a saved JSON on its own). The
before/after variants turn the library's fast paths off through
`keras_diffusion.utils.fast_paths`.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import performance_diffusers
import performance_workers
from performance_report import BACKENDS
from performance_report import render
from performance_report import write_report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "mnist")
DEFAULT_JSON = os.path.join(ROOT, "runs", "performance.json")

FULL = {"batch": 128, "steps": 5, "rounds": 2, "images": 256,
        "sample_steps": 50, "ab_sample_steps": 10, "memory_images": 1000,
        "memory_steps": 5, "omp_steps": 3}
QUICK = {"batch": 16, "steps": 2, "rounds": 2, "images": 16,
         "sample_steps": 3, "ab_sample_steps": 2, "memory_images": 40,
         "memory_steps": 2, "omp_steps": 2}
# The A/B variants trained beside the baseline ("f32") in each backend's
# training worker; see `performance_workers.worker_train`.
TRAIN_VARIANTS = {
    "tensorflow": "f32,bf16,noprefetch",
    "jax": "f32,cores,transpose,bf16,noema",
    "torch": "f32,bf16,kerasgn,kerasconv",
}
# What `--skip` can leave out.
PARTS = ("train", "sample", "diffusers", "omp")
# `--worker KIND`: the function that measures it, in this process.
WORKERS = {
    "peak": performance_workers.worker_peak,
    "train": performance_workers.worker_train,
    "sample": performance_workers.worker_sample,
    "flops": performance_workers.worker_flops,
    "diffusers": performance_diffusers.worker_diffusers,
}


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
    """Runs one worker in a fresh process; returns its figures, or an error.

    Args:
        kind: str, a key of `WORKERS`.
        settings: dict, `FULL` or `QUICK` with the command line's changes.
        data: str or None, the MNIST IDX directory.
        backend: str or None, the worker's `KERAS_BACKEND`.
        variants: str or None, `--variants` of a training worker.
        extra_env: dict or None, more environment variables for the worker.
        timeout: seconds before the worker is given up on.

    Returns:
        dict: the worker's `RESULT` with its `command` and `wall_s`, or
        `{"error": ..., "command": ...}`.
    """
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
    """The CPU's model, core count and vector instructions, and Python's
    version."""
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
    """The versions of the libraries the figures depend on."""
    from importlib import metadata

    found = {}
    for name in ("keras", "tensorflow", "jax", "jaxlib", "torch", "diffusers",
                 "numpy", "keras-diffusion"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def measure(settings, backends, skip, data, quick):
    """Runs every worker in turn; returns the figures, as the JSON saves them.

    Args:
        settings: dict, `FULL` or `QUICK` with the command line's changes.
        backends: list of str, our backends to measure.
        skip: set of str, parts not to measure (`train`, `sample`,
            `diffusers`, `omp`).
        data: str or None, the MNIST IDX directory.
        quick: bool, whether `settings` are the tiny ones (said in the page).
    """
    # Workers inherit OMP_WAIT_POLICY, by default unset: OpenMP's spinning
    # threads, what users get. The "omp" pair measures both policies.
    report = {"machine": machine_info(), "versions": versions(),
              "settings": settings, "quick": quick,
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
    return report


def save_figures(report, path):
    """Writes `report` as JSON to `path`, whole or not at all."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(path + ".tmp", path)


def run_worker_here(args, settings):
    """`--worker KIND`: runs that worker in this process."""
    if (args.worker in ("train", "sample")
            and os.environ.get("KERAS_BACKEND") == "jax"):
        # As `kd` does: one JAX CPU device per core, before JAX starts.
        from keras_diffusion.utils.jax_cpu import split_cpu_into_devices

        split_cpu_into_devices()
    for key, value in settings.items():
        setattr(args, key, value)
    WORKERS[args.worker](args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings, for development")
    parser.add_argument("--out", default=None,
                        help="Markdown file to write (default: "
                             "docs/performance.md; --quick: none)")
    parser.add_argument("--json", default=DEFAULT_JSON,
                        help="where to save the figures (default: "
                             "runs/performance.json)")
    parser.add_argument("--no-render", action="store_true",
                        help="save the figures only; render them later with "
                             "benchmarks/performance_report.py")
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
        run_worker_here(args, settings)
        return
    backends = [b for b in args.backends.split(",") if b]
    skip = {part for part in args.skip.split(",") if part}
    for flag, names, known in (("--backends", backends, BACKENDS),
                               ("--skip", skip, PARTS)):
        unknown = sorted(set(names) - set(known))
        if unknown:
            parser.error(f"{flag}: unknown {unknown}; choose from {list(known)}")
    data = args.data if os.path.isdir(args.data) else None
    report = measure(settings, backends, skip, data, args.quick)
    save_figures(report, args.json)
    print(f"figures: {args.json}")
    if args.no_render:
        return
    markdown = render(report)
    print(markdown)
    out = args.out if args.out or args.quick else os.path.join(ROOT, "docs",
                                                                "performance.md")
    if out:
        write_report(out, markdown)
        print(f"wrote {out} (raw figures: {args.json})")


if __name__ == "__main__":
    main()
