"""The own-data contract, end to end: every `kd train` kind on a folder of PNGs.

    python tools/own_data_contract.py [--size 32] [--channels 3] [--out DIR]
        [--kinds ddpm cfg ...]

Writes a folder of SIZE x SIZE PNGs with CHANNELS channels, in three class
sub-folders, then runs `kd` on it as a user would, each command in a fresh
process, with the recipes as they ship (only the steps cut short):

- `kd train KIND --data FOLDER --max-steps 2 --batch-size 8` for every kind
  of `kd train` (`TRAIN_KINDS`; the latent kinds train their own VAE first;
  `reflow` and `reflow-uniform` draw 16 pairs from the `rf-pixel` trained
  before them, `distill` from that `reflow`; `evaluator` trains one epoch);
- for every kind that samples, `kd sample --num 8 --out x.npz` (with
  `--class 1` for the class-conditional kinds), checking that the file
  holds `images` of shape (8, SIZE, SIZE, CHANNELS) in [0, 1] (and the
  labels asked for);
- `kd sample` of the `ddpm` steered by the trained `classifier`, and `kd
  evaluate` of the `ddpm`'s samples by the trained `evaluator`.

The tests run the same route with tiny networks (tests/test_own_data.py);
this is the full-size check. Prints one line per command and exits 1 if any
failed.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from keras_diffusion_cli.main import TRAIN_KINDS  # the kinds, no framework

CLASSES = ("cat", "dog", "owl")
CONDITIONAL = {"cfg", "cfg-v", "cfg-channel", "cfg-xattn"}
NOT_SAMPLING = {"vae", "evaluator", "classifier"}
# kind: the flow it starts from
FROM_FLOW = {"reflow": "rf-pixel", "reflow-uniform": "rf-pixel", "distill": "reflow"}


def write_folder(root, size, channels, per_class):
    """PNGs in one sub-folder per class, each class a bright square in its
    own place and colour on noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, name in enumerate(CLASSES):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for number in range(per_class):
            image = rng.integers(0, 60, (size, size, channels)).astype("uint8")
            start = 2 + (size // 4) * index
            image[start:start + size // 4, start:start + size // 4,
                  index % channels] = 230
            Image.fromarray(image.squeeze()).save(
                os.path.join(root, name, f"{number}.png"))
    return root


def kd(*args):
    """Runs `kd ARGS` in a fresh process: `(ok, seconds, last output line)`."""
    start = time.perf_counter()
    result = subprocess.run(["kd", *map(str, args)], capture_output=True,
                            text=True)
    lines = (result.stdout + result.stderr).strip().splitlines() or [""]
    return result.returncode == 0, time.perf_counter() - start, lines[-1]


def check_samples(path, shape, label=None):
    """`None` if `path` holds `images` of `shape` in [0, 1] (and `label`
    for every image), else what is wrong."""
    with np.load(path) as samples:
        images, labels = samples["images"], samples.get("labels")
    if images.shape != shape:
        return f"images {images.shape}, expected {shape}"
    if images.min() < 0 or images.max() > 1:
        return f"values {images.min():.3g} to {images.max():.3g}, not in [0, 1]"
    if label is not None and (labels is None or set(labels.tolist()) != {label}):
        return f"labels {labels}, expected all {label}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--out", default=None,
                        help="working directory (default: a new temporary one)")
    parser.add_argument("--kinds", nargs="+", default=list(TRAIN_KINDS),
                        choices=TRAIN_KINDS)
    args = parser.parse_args()
    work = args.out or tempfile.mkdtemp(prefix="kd_contract_")
    data = write_folder(os.path.join(work, "images"), args.size, args.channels,
                        args.per_class)
    shape = (8, args.size, args.size, args.channels)
    kinds = list(args.kinds)
    for kind, source in FROM_FLOW.items():  # each right after its flow
        if kind in kinds and source in kinds:
            kinds.remove(kind)
            kinds.insert(kinds.index(source) + 1, kind)
    print(f"{len(CLASSES)} classes of {args.per_class} {args.size}x{args.size}"
          f"x{args.channels} PNGs in {data}; backend "
          f"{os.environ.get('KERAS_BACKEND', 'tensorflow')}", flush=True)
    failures = []

    def report(name, ok, seconds, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {name:42s} {seconds:6.1f} s  {detail}",
              flush=True)
        if not ok:
            failures.append(name)

    models = {}
    for kind in kinds:
        out = os.path.join(work, "runs", kind)
        if kind in FROM_FLOW:
            source = FROM_FLOW[kind]
            if source not in models:
                report(f"train {kind}", False, 0.0, f"needs {source} trained first")
                continue
            command = ("train", kind, "--from", models[source], "--pairs",
                       16, "--pair-steps", 2, "--max-steps", 2, "--batch-size", 8,
                       "--out", out)
        elif kind == "evaluator":
            command = ("train", "evaluator", "--data", data, "--epochs", 1,
                       "--batch-size", 8, "--out", out)
        else:
            command = ("train", kind, "--data", data, "--max-steps", 2,
                       "--batch-size", 8, "--out", out)
        ok, seconds, last = kd(*command)
        report(f"train {kind}", ok, seconds, "" if ok else last)
        if not ok:
            continue
        models[kind] = os.path.join(out, f"{kind}.keras")
        if kind in NOT_SAMPLING:
            continue
        npz = os.path.join(work, f"{kind}.npz")
        label = 1 if kind in CONDITIONAL else None
        flags = ("--class", label) if label is not None else ()
        ok, seconds, last = kd("sample", "--model", models[kind], "--num", 8,
                               "--steps", 2, "--out", npz, *flags)
        problem = check_samples(npz, shape, label) if ok else last
        report(f"sample {kind}" + (" --class 1" if label is not None else ""),
               problem is None, seconds, problem or f"images {shape}")
    if "ddpm" in models and "classifier" in models:
        npz = os.path.join(work, "guided.npz")
        ok, seconds, last = kd("sample", "--model", models["ddpm"], "--classifier",
                               models["classifier"], "--class", 2, "--num", 8,
                               "--steps", 2, "--out", npz)
        problem = check_samples(npz, shape, 2) if ok else last
        report("sample ddpm --classifier --class 2", problem is None, seconds,
               problem or f"images {shape}")
    if "ddpm" in models and "evaluator" in models:
        ok, seconds, last = kd("evaluate", "--samples",
                               os.path.join(work, "ddpm.npz"), "--evaluator",
                               models["evaluator"])
        report("evaluate ddpm samples --evaluator", ok, seconds, last.strip())
    print(f"{len(failures)} failed" + (f": {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
