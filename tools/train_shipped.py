"""Train candidates for the shipped models side by side, score each, pack them.

    KERAS_BACKEND=jax python tools/train_shipped.py --data path/to/mnist \\
        --out OUT --seconds 520

Runs every job of `JOBS` (or those named with `--jobs`) as its own process,
at once: on a GPU the small networks leave the device mostly idle, so the
jobs share it well (on this project's 2-core CPU run one at a time, with
`--jobs`). A job is a chain of stages: `train` of a recipe (with
`FIDCallback` every `eval_every` steps into its `fid.csv`), `train_reflow`
of the flow the chain trained, then `evaluate` of what it trained at the
issues' settings (1,000 samples against the first 1,000 test digits, as
`kd evaluate` scores them). Every stage is the library's own function, as
`kd train` and `kd evaluate` call it (without backups every 10 steps or
sample grids, which only slow a fast device).

Each job works in `WORK/JOB/` (its runs and `JOB.log`) and, after every
stage, packs `OUT/JOB.tar.gz`: the presets it trained, their `log.csv` and
`fid.csv`, its log, and `results.json` (each evaluation's figures, the steps each model trained and
the seconds each stage took). Training stops at its share of `--seconds`
whatever its step (the model is saved; `results.json` says how many steps
it had): a chain with reflow trains Flow-1 until 45% of it, Flow-2 until
85%, others until 85%; no evaluation starts after it. So the run ends in
time on a device lent for minutes.

`--scale 0.01` cuts every step count, pair count and sample count by that
factor: a dry run of the whole chain in minutes on a CPU.
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time

# name: (stages). A `train` stage: (recipe name, changes to the recipe,
# train() arguments). A `reflow` stage: train_reflow() arguments, Flow-1 is
# the chain's last trained flow. An `evaluate` list: (sampler, steps) pairs
# for every model of the chain (`classifier`: guidance scales of the
# chain's classifier on the `ddpm` job's model and the shipped one).
FLOW_EVALS = [("euler", 1), ("euler", 2), ("euler", 8), ("heun", 4)]
DIFFUSION_EVALS = [("dpm-sde", 10), ("ddim", 50), ("ddpm", 1000)]
JOBS = {
    "ddpm": [("train", "ddpm", {}, dict(max_steps=7000, eval_every=1000)),
             ("evaluate", DIFFUSION_EVALS)],
    "ddpm-ema": [("train", "ddpm", dict(ema_momentum=0.999),
                  dict(max_steps=7000, eval_every=1000)),
                 ("evaluate", DIFFUSION_EVALS)],
    "classifier": [("train", "classifier", {}, dict(max_steps=8000)),
                   ("classifier", [5.0, 10.0])],
    "pixel-flow": [("train", "rf-pixel", {}, dict(max_steps=7000, eval_every=1000)),
                   ("reflow", dict(num_pairs=50000, pair_steps=32, max_steps=4000)),
                   ("evaluate", FLOW_EVALS)],
    # The pixel chain alone on the device, without FID while training.
    "pixel-flow-alone": [("train", "rf-pixel", {}, dict(max_steps=7000)),
                         ("reflow", dict(num_pairs=40000, pair_steps=24,
                                         max_steps=4000)),
                         ("evaluate", FLOW_EVALS)],
    "pixel-flow-ema": [("train", "rf-pixel", dict(ema_momentum=0.999),
                        dict(max_steps=7000, eval_every=1000)),
                       ("reflow", dict(num_pairs=50000, pair_steps=32,
                                       max_steps=4000)),
                       ("evaluate", FLOW_EVALS)],
    "latent-flow": [("train", "rf-latent",
                     dict(time_sampling="logit_normal", batch_size=64),
                     dict(max_steps=10000, eval_every=2000, vae="vae")),
                    ("reflow", dict(num_pairs=50000, pair_steps=32, max_steps=4000)),
                    ("evaluate", FLOW_EVALS)],
    "ldm-v-ema": [("train", "ldm", dict(prediction="v", loss_weighting="min_snr",
                                        batch_size=64, ema_momentum=0.999),
                   dict(max_steps=14000, eval_every=2000, vae="vae")),
                  ("evaluate", DIFFUSION_EVALS)],
    "ldm-wide": [("train", "ldm", dict(prediction="v", loss_weighting="min_snr",
                                       batch_size=64, ema_momentum=0.999,
                                       network={"widths": (96,)}),
                  dict(max_steps=6000, eval_every=2000, vae="vae")),
                 ("evaluate", DIFFUSION_EVALS)],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MNIST IDX directory.")
    parser.add_argument("--out", required=True, help="Where the tars go.")
    parser.add_argument("--work", default=os.path.join("runs", "train_shipped"),
                        help="Where the jobs train.")
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--seconds", type=float, default=520.0,
                        help="Training stops this long after the start.")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--flow1-share", type=float, default=0.45,
                        help="Share of --seconds a chain with reflow trains Flow-1.")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # one job, in its process
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    if args.job:
        return run_job(args.job, args)
    deadline = time.time() + args.seconds
    children = {}
    for job in args.jobs:
        os.makedirs(os.path.join(args.work, job), exist_ok=True)
        log = open(os.path.join(args.work, job, f"{job}.log"), "w")
        children[job] = subprocess.Popen(
            [sys.executable, __file__, "--job", job, "--data", args.data,
             "--out", args.out, "--work", args.work, "--scale", str(args.scale),
             "--seconds", str(args.seconds), "--deadline", str(deadline),
             "--flow1-share", str(args.flow1_share)],
            stdout=log, stderr=subprocess.STDOUT)
    for job, child in children.items():
        print(f"{job}: exit {child.wait()}", flush=True)


def run_job(job, args):
    import keras

    from keras_diffusion.app.evaluate import evaluate
    from keras_diffusion.app.recipes import get_recipe
    from keras_diffusion.app.train import train
    from keras_diffusion.app.train import train_reflow
    from keras_diffusion.presets import load_model

    def scaled(count, least=2):
        return max(least, int(round(count * args.scale)))

    has_reflow = any(stage[0] == "reflow" for stage in JOBS[job])
    start_of_run = args.deadline - args.seconds

    class StopAt(keras.callbacks.Callback):
        """Ends training at `StopAt.at` (the model is then saved); keeps
        the optimizer steps the model has had."""

        at = steps = None

        def on_train_batch_end(self, batch, logs=None):
            if time.time() > StopAt.at:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            StopAt.steps = int(self.model.optimizer.iterations)

    work = os.path.join(args.work, job)
    results = {"job": job, "backend": keras.backend.backend(), "stages": [],
               "evaluations": []}
    models = []  # (label, .keras path) of what the chain trained
    num_images = scaled(1000, least=64)
    for stage in JOBS[job]:
        start, cpu_start = time.time(), time.process_time()
        share = args.flow1_share if stage[0] == "train" and has_reflow else 0.85
        StopAt.at = start_of_run + share * args.seconds
        if stage[0] == "train":
            _, name, changes, settings = stage
            recipe = get_recipe(name).replace(**changes)
            settings = dict(settings, max_steps=scaled(settings["max_steps"]))
            if "eval_every" in settings:
                settings.update(eval_every=scaled(settings["eval_every"], least=1),
                                eval_images=num_images)
            path = train(recipe, data=args.data, out_dir=os.path.join(work, name),
                         sample_every=0, verbose=2, backup_every=1000,
                         callbacks=[StopAt()], **settings)
            models.append((name, path))
            record = dict(stage="train", recipe=name, changes=_plain(changes),
                          **_plain(settings))
        elif stage[0] == "reflow":
            settings = dict(stage[1], num_pairs=scaled(stage[1]["num_pairs"], 256),
                            max_steps=scaled(stage[1]["max_steps"]))
            path = train_reflow(models[-1][1], out_dir=os.path.join(work, "reflow"),
                                sample_every=0, verbose=2, backup_every=1000,
                                callbacks=[StopAt()], **settings)
            models.append(("reflow", path))
            record = dict(stage="reflow", flow=models[-2][0], **settings)
        elif stage[0] == "evaluate":
            for label, path in models:
                for sampler, steps in stage[1]:
                    if time.time() > args.deadline:
                        break
                    if sampler == "ddpm":
                        steps = scaled(steps, least=10)
                    result = evaluate(model=path, sampler=sampler, num_steps=steps,
                                      num_images=num_images, data=args.data)
                    results["evaluations"].append(dict(model=label, **_plain(result)))
                    _save(results, work, args.out, job)
            record = dict(stage="evaluate")
        elif stage[0] == "classifier":
            ddpm_path = os.path.join(args.work, "ddpm", "ddpm", "ddpm.keras")
            while not os.path.isfile(ddpm_path) and time.time() < args.deadline:
                time.sleep(5)
            targets = [("shipped ddpm", "ddpm")]
            if os.path.isfile(ddpm_path):
                targets.append(("new ddpm", ddpm_path))
            classifier = load_model(models[-1][1])
            for label, model in targets:
                for sampler, steps in [(None, None), ("ddim", 50)]:
                    for scale in stage[1]:
                        if time.time() > args.deadline:
                            break
                        result = evaluate(model=model, sampler=sampler,
                                          num_steps=steps, num_images=num_images,
                                          data=args.data, classifier=classifier,
                                          classifier_scale=scale)
                        results["evaluations"].append(
                            dict(model=label, **_plain(result)))
                        _save(results, work, args.out, job)
            record = dict(stage="classifier guidance")
        if stage[0] in ("train", "reflow"):
            record["steps_trained"] = StopAt.steps
        record.update(seconds=round(time.time() - start, 1),
                      process_cpu_seconds=round(time.process_time() - cpu_start, 1))
        results["stages"].append(record)
        print(json.dumps(record), flush=True)
        _save(results, work, args.out, job)


def _plain(value):
    """`value` with NumPy numbers and tuples made JSON-friendly."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _save(results, work, out, job):
    """Writes `results.json` and packs the job's presets and logs."""
    with open(os.path.join(work, "results.json"), "w") as file:
        json.dump(results, file, indent=1)
    keep = ("results.json", "log.csv", "fid.csv", "config.json",
            "metadata.json", "model.weights.h5", "reference.npz", f"{job}.log")
    tmp = os.path.join(out, f".{job}.tar.gz")
    with tarfile.open(tmp, "w:gz") as tar:
        for folder, _, files in os.walk(work):
            for name in files:
                if name in keep and "backup" not in folder:
                    path = os.path.join(folder, name)
                    tar.add(path, os.path.relpath(path, os.path.dirname(work)))
    os.replace(tmp, os.path.join(out, f"{job}.tar.gz"))


if __name__ == "__main__":
    main()
