"""CPU-minutes of each recipe's training on this machine, and of reflow pairs.

    KERAS_BACKEND=tensorflow python benchmarks/recipe_cost.py \\
        --recipes ddpm ldm rf-pixel rf-latent classifier reflow distill --steps 20

For every recipe it builds the model `kd train KIND` builds (the latent
kinds on the shipped `vae`; `reflow` as a copy of the shipped `rf-pixel`
and of the shipped `rf-latent`, `distill` of the shipped `reflow-pixel`
and `reflow-latent`), fits it on random data of the right shape
at the recipe's batch size for a few warm-up steps (compiling), then times
`--steps` more, and prints the process's CPU seconds per optimizer step (the
measure `benchmarks/time_to_quality.py` reports as `train_cpu_seconds`,
compiling aside) and what the recipe's `max_steps` cost at that rate.
`--set KEY=VALUE` changes a setting of every recipe timed, as in
`time_to_quality.py` (`--set network.widths=[16,48,96]`). For
`reflow` and `distill` it also times drawing pairs with the recipe's
`pair_sampler` and `pair_steps`: CPU seconds per pair, and what the
recipe's `num_pairs` cost. Run it on an idle
machine: other jobs inflate the CPU time too.
"""

import argparse
import time

import numpy as np

# The shipped flows each pair-drawing kind starts from.
PAIRS_FROM = {"reflow": ("rf-pixel", "rf-latent"),
              "distill": ("reflow-pixel", "reflow-latent")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+",
                        default=["ddpm", "ldm", "rf-pixel", "rf-latent",
                                 "classifier", "reflow", "distill"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="change a recipe setting (repeatable)")
    args = parser.parse_args()

    import keras

    from time_to_quality import with_overrides

    from keras_diffusion.app.recipes import ClassifierRecipe
    from keras_diffusion.app.recipes import build_model
    from keras_diffusion.app.recipes import get_recipe
    from keras_diffusion.app.reflow_pairs import copy_flow
    from keras_diffusion.presets import load_model

    print(f"backend {keras.backend.backend()}, {args.steps} timed steps after "
          f"{args.warmup} warm-up steps"
          + (f"; settings changed: {' '.join(args.set)}" if args.set else ""))
    print("| recipe | batch | CPU s / step | max_steps | CPU-minutes |")
    print("| --- | --- | --- | --- | --- |")
    pair_rows = []
    for name in args.recipes:
        recipe = with_overrides(get_recipe(name), args.set)
        if recipe.from_flow:
            for flow_name in PAIRS_FROM[name]:
                flow = load_model(flow_name)
                model = copy_flow(flow, seed=0, **recipe.model_settings())
                model.compile(optimizer=recipe.optimizer())
                shape = (recipe.batch_size,) + tuple(flow.image_shape)
                data = {"noise": np.random.normal(size=shape).astype("float32"),
                        "images": np.random.normal(size=shape).astype("float32")}
                _row(f"{name} (from {flow_name})", recipe, model, data, args)
                pair_rows.append((f"{flow_name} ({name})", flow, recipe))
            continue
        vae = load_model("vae") if recipe.needs_vae else None
        model = build_model(recipe, seed=0, vae=vae)
        images = np.random.uniform(-1, 1, (recipe.batch_size, 28, 28, 1))
        data = (images.astype("float32"),)
        if recipe.conditional or isinstance(recipe, ClassifierRecipe):
            data += (np.arange(recipe.batch_size) % 10,)
        _row(name, recipe, model, data, args)
    if pair_rows:
        print()
        print("| pairs from | sampler | CPU s / pair | num_pairs x pair_steps "
              "| CPU-minutes |")
        print("| --- | --- | --- | --- | --- |")
    for flow_name, flow, recipe in pair_rows:
        # The recipe's own sampler and steps, on one chunk of 256 pairs.
        noise = np.random.normal(size=(256,) + tuple(flow.image_shape))
        noise = noise.astype("float32")
        settings = dict(batch_size=256, progress=False)
        flow.sample_from_noise(noise, recipe.pair_sampler, 2, **settings)
        start = time.process_time()
        flow.sample_from_noise(noise, recipe.pair_sampler, recipe.pair_steps,
                               **settings)
        per_pair = (time.process_time() - start) / 256
        total = per_pair * recipe.num_pairs / 60
        print(f"| {flow_name} | {recipe.pair_sampler} | {per_pair:.4f} | "
              f"{recipe.num_pairs:,} x {recipe.pair_steps} | {total:.1f} |",
              flush=True)


def _row(label, recipe, model, data, args):
    """Times `args.steps` optimizer steps of `model` on one batch `data`."""
    import keras

    batch = data if isinstance(data, dict) else data[0]
    count = len(batch["noise"]) if isinstance(data, dict) else len(batch)
    x, y = (data, None) if isinstance(data, dict) else (data[0], data[1:] or None)
    y = y[0] if y else None

    def fit(steps):
        repeat = lambda a: np.concatenate([a] * steps)  # noqa: E731
        xs = keras.tree.map_structure(repeat, x)
        model.fit(xs, None if y is None else repeat(y), batch_size=count,
                  epochs=1, shuffle=False, verbose=0)

    fit(args.warmup)
    start = time.process_time()
    fit(args.steps)
    per_step = (time.process_time() - start) / args.steps
    print(f"| {label} | {recipe.batch_size} | {per_step:.3f} | {recipe.max_steps:,} | "
          f"{per_step * recipe.max_steps / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
