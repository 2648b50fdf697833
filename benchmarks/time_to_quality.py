"""Time to quality: a recipe's FID against training CPU-minutes.

Train a recipe with `FIDCallback` from a plain `model.fit` (as a user's
script would), writing `OUT/fid.csv` (one row per evaluation, see
docs/evaluation.md), `OUT/log.csv` (Keras' `CSVLogger`, with the latest
`fid` per epoch), `OUT/run.json` (the settings, the floor, the commit) and
`OUT/model.keras` (the trained model):

    nice -n 10 python benchmarks/time_to_quality.py --recipe ddpm \\
        --data /work/shared/data/mnist --steps 3000 --eval-every 250 \\
        --label "ddpm (new recipe)" --out runs/ttq/ddpm-new

`--minutes M` stops once training has used M CPU-minutes (evaluations not
counted). `--set KEY=VALUE` (repeatable) changes a recipe setting for the
run, such as `--set learning_rate=2e-4 --set network.widths=[32,64,96]`,
to train the earlier version of a recipe beside the current one. Then draw several runs (say, one at the commit of the old recipe
and one of the new) on one plot, with the real-vs-real floor:

    python benchmarks/time_to_quality.py --plot runs/ttq/ddpm-old/fid.csv \\
        runs/ttq/ddpm-new/fid.csv --out docs/images/time_to_quality_ddpm.png

The FID is `kd evaluate`'s: `--num-images` samples (default 256, the
model's default sampler) against the first as many MNIST test digits, so
the floor is `Evaluator.floor(num_images)`. The model trains as `kd train`
trains it: the recipe's model, optimizer, data pipeline and seed, and under
JAX data-parallel over one CPU device per core.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def train(args):
    from keras_diffusion.utils import jax_cpu

    if os.environ.get("KERAS_BACKEND") == "jax":
        jax_cpu.split_cpu_into_devices()  # as `kd` does, before JAX starts
    import keras

    from keras_diffusion.callbacks import FIDCallback
    from keras_diffusion.data import load_mnist
    from keras_diffusion.data import make_dataset
    from keras_diffusion.data import to_model_range
    from keras_diffusion.app.distribution import cpu_data_parallel
    from keras_diffusion.metrics import Evaluator
    from keras_diffusion.models import LatentDiffusion
    from keras_diffusion.models import VAE
    from keras_diffusion.presets import load_model
    from keras_diffusion.app.recipes import build_model
    from keras_diffusion.app.recipes import get_recipe

    commit = _commit()  # what is trained, before anything may change
    recipe = with_overrides(get_recipe(args.recipe), args.set)
    if not recipe.draws_samples or recipe.from_flow:
        raise SystemExit(f"Recipe {args.recipe!r} draws no samples to score; "
                         "choose a diffusion or flow recipe such as ddpm.")
    if recipe.needs_vae and args.vae is None:
        raise SystemExit(f"Recipe {args.recipe!r} is latent: pass --vae (a "
                         "trained VAE, such as the shipped `vae`).")
    batch_size = args.batch_size or recipe.batch_size
    max_steps = args.steps or recipe.max_steps
    os.makedirs(args.out, exist_ok=True)
    fid_path = os.path.join(args.out, "fid.csv")

    evaluator = Evaluator.load()
    train_images, train_labels = load_mnist(args.data, "train")
    test_images, _ = load_mnist(args.data, "test")
    images = to_model_range(train_images)
    steps_per_epoch = min(len(images) // batch_size, max_steps)
    epochs = math.ceil(max_steps / steps_per_epoch)

    with cpu_data_parallel(batch_size) as replicas:
        vae, latent_scale = None, 1.0
        if args.vae is not None:
            vae = load_model(args.vae, expected_type=VAE)
            latent_scale = LatentDiffusion.compute_latent_scale(vae, images)
        keras.utils.set_random_seed(args.seed)
        model = build_model(recipe, seed=args.seed,
                            learning_rate=args.learning_rate, vae=vae,
                            latent_scale=latent_scale, total_steps=max_steps)
        dataset = make_dataset(
            images, train_labels if recipe.conditional else None,
            batch_size=batch_size, seed=args.seed)
        fid = FIDCallback(
            reference_images=test_images[:args.num_images], evaluator=evaluator,
            every_steps=args.eval_every, num_images=args.num_images,
            sampler=args.sampler, num_steps=args.sampling_steps,
            seed=args.seed, log_path=fid_path)
        callbacks = [fid,  # before the CSVLogger, so that it logs `fid`
                     keras.callbacks.CSVLogger(os.path.join(args.out, "log.csv")),
                     stop_after(fid, max_steps, args.minutes)]
        start = time.perf_counter()
        model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=args.verbose, shuffle=False)
        wall = time.perf_counter() - start
        # The trained model (EMA weights, as `fit` leaves them), to sample
        # or score again, such as with another sampler.
        model.save(os.path.join(args.out, "model.keras"))

    run = {
        "label": args.label or os.path.basename(os.path.abspath(args.out)),
        "recipe": args.recipe, "overrides": args.set or [], "backend": keras.backend.backend(),
        "devices": replicas.num_replicas if replicas else 1,
        "steps": max_steps, "minutes": args.minutes, "batch_size": batch_size,
        "learning_rate": args.learning_rate or recipe.learning_rate,
        "eval_every": args.eval_every, "num_images": args.num_images,
        "sampler": args.sampler or model.default_sampler,
        "sampling_steps": model.make_sampler(args.sampler,
                                             args.sampling_steps).num_steps,
        "seed": args.seed, "floor": evaluator.floor(args.num_images, args.data),
        "fit_wall_seconds": wall, "commit": commit, "command": sys.argv,
        "evaluations": len(fid.evaluations),
    }
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(run, f, indent=2)
    print(f"{len(fid.evaluations)} evaluations in {fid_path}; floor "
          f"{run['floor']:.2f} at N = {args.num_images}")
    for row in fid.evaluations:
        print(f"  step {row['step']:>6}  FID {row['fid']:9.2f}  "
              f"train {row['train_cpu_seconds'] / 60:6.2f} CPU-min "
              f"({row['train_seconds'] / 60:.2f} min)  eval {row['fid_seconds']:.1f} s")


def stop_after(fid, max_steps, minutes=None):
    """A callback that stops `fit` after `max_steps` optimizer steps or, with
    `minutes`, once training (evaluations left out, as the `FIDCallback`
    `fid` counts it) has used that many CPU-minutes. Made here, not at
    import: under JAX, Keras must load after the CPU split."""
    import keras

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if fid.step >= max_steps or (
                minutes and fid.training_seconds()[1] >= 60.0 * minutes
            ):
                self.model.stop_training = True

    return Stop()


def with_overrides(recipe, settings):
    """A copy of the `Recipe` with `KEY=VALUE` settings (`VALUE` as JSON,
    else a string; `network.widths=[32,64]` sets a key of the network)."""
    for setting in settings or ():
        key, sep, value = setting.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE; got {setting!r}")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        value = tuple(value) if isinstance(value, list) else value
        if key.startswith("network."):
            recipe = recipe.replace(network={key.partition(".")[2]: value})
        else:
            try:
                recipe = recipe.replace(**{key: value})
            except TypeError:
                raise SystemExit(f"Recipe {recipe.name!r} has no setting "
                                 f"{key!r}.") from None
    return recipe


def plot(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_diffusion.utils.io import atomic_path

    key = "train_cpu_seconds" if args.clock == "cpu" else "train_seconds"
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    floors = {}
    for path in args.plot:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise SystemExit(f"{path} has no evaluations yet.")
        run = _run_info(path)
        label = run.get("label") or os.path.basename(os.path.dirname(
            os.path.abspath(path)))
        minutes = [float(row[key]) / 60.0 for row in rows]
        fids = [float(row["fid"]) for row in rows]
        axes.plot(minutes, fids, marker="o", markersize=3, label=label)
        num = int(rows[0]["num_images"])
        if run.get("floor") is not None:
            floors[num] = run["floor"]
        elif args.data is not None and num not in floors:
            from keras_diffusion.metrics import Evaluator

            floors[num] = Evaluator.load().floor(num, args.data)
    for num, floor in sorted(floors.items()):
        axes.axhline(floor, color="gray", linestyle="--", linewidth=1,
                     label=f"floor (real vs real, N = {num})")
    axes.set_yscale("log")
    axes.set_xlim(left=0)
    axes.set_xlabel("training CPU-minutes (evaluations excluded)"
                    if args.clock == "cpu" else
                    "training minutes, wall clock (evaluations excluded)")
    axes.set_ylabel(f"FID (N = {', '.join(map(str, sorted(floors))) or '?'})")
    axes.set_title(args.title or "Time to quality")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with atomic_path(args.out) as tmp:
        figure.savefig(tmp, dpi=120)
    print(f"wrote {args.out}")


def _run_info(csv_path):
    """`run.json` beside a `fid.csv`, or `{}`."""
    path = os.path.join(os.path.dirname(os.path.abspath(csv_path)), "run.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE,
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--plot", nargs="+", metavar="CSV",
                        help="draw these fid.csv files into --out (a .png)")
    parser.add_argument("--out", required=True,
                        help="the run directory (training) or the .png (--plot)")
    parser.add_argument("--data", help="MNIST IDX directory or .npz")
    parser.add_argument("--recipe", default="ddpm")
    parser.add_argument("--label", help="the run's name on the plot")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: "
                        "the recipe's max_steps)")
    parser.add_argument("--minutes", type=float,
                        help="stop after this many training CPU-minutes")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--num-images", type=int, default=256)
    parser.add_argument("--sampler", help="default: the model's default_sampler")
    parser.add_argument("--sampling-steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--vae", help="trained VAE, for latent recipes")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="change a recipe setting for this run (repeat; "
                        "JSON values; network.KEY for the network), e.g. to "
                        "train an earlier version of a recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="--plot: the x axis, CPU or wall-clock minutes")
    parser.add_argument("--title")
    args = parser.parse_args()
    if args.plot:
        plot(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
