"""Flow-1 vs Flow-2 (reflow) vs a one-step student: quality, speed and straightness per Euler step count.

    python benchmarks/flow_table.py --data ../shared/data/mnist \
        --pair pixel rf-pixel reflow-pixel distill-pixel \
        --pair latent rf-latent reflow-latent distill-latent \
        --steps 1 2 4 8 16 32 --num 1000 \
        --plot docs/images/flow_fid_vs_steps.png --figures docs/images

Each `--pair` is a label, Flow-1 and Flow-2, and optionally the one-step
student distilled from Flow-2 (`kd train distill`), which is scored at one
step only (it is trained for nothing else).

For every model and every Euler step count it samples `--num` images from
the same seed, times the sampling, and scores them with the shipped
evaluator (`kd evaluate`'s FID against `--num` MNIST test images, the
real-vs-real floor at that count, the confident rate). It also measures each
model's straightness (`keras_diffusion.metrics.straightness`, 16 Euler steps,
256 paths; 0 for straight paths). It prints one Markdown table, and with
`--plot` writes FID against steps for every model. With `--figures DIR` it
writes, for each pair: `DIR/flow_<space>_noise_vs_samples.png` (the starting
noise, decoded for a latent flow, top row; Flow-1's 16-step samples, bottom
row) and `DIR/flow_<space>_flow1_vs_flow2.png` (rows: Flow-1 then Flow-2 at 1,
2 and 4 steps, all from the same noise). Sampling times include compiling
the step once.
"""

import argparse
import time

import numpy as np

STUDENT = "distilled"
STAGES = ("Flow-1", "Flow-2", STUDENT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs="+", action="append", required=True,
                        metavar="LABEL FLOW1 FLOW2 [STUDENT]",
                        help="A label and two or three models (shipped names or "
                             ".keras paths).")
    parser.add_argument("--data", default=None, help="MNIST IDX directory or .npz.")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--figures", default=None)
    parser.add_argument("--results", default=None,
                        help="JSON file that keeps the FID curves across runs "
                             "(one run per pair); --plot draws every curve in it.")
    args = parser.parse_args()
    for pair in args.pair:
        if len(pair) not in (3, 4):
            parser.error(f"--pair takes LABEL FLOW1 FLOW2 [STUDENT]; got {pair}")
    if args.figures:
        import os

        os.makedirs(args.figures, exist_ok=True)  # before minutes of sampling

    import keras
    from _tables import print_header

    import keras_diffusion
    from keras_diffusion.metrics import Evaluator
    from keras_diffusion.metrics import straightness

    evaluator = Evaluator.load()
    floor = evaluator.floor(args.num, args.data)
    print(f"backend {keras.backend.backend()}, {args.num} samples, seed {args.seed}, "
          f"Euler; floor {floor:.2f}")
    header = ("| space | model | steps | FID | floor | FID / floor | confident "
              "| s / 100 images |")
    print_header(header)
    curves, straight = {}, {}
    for label, *names in args.pair:
        models = [keras_diffusion.load_model(name) for name in names]
        for stage, name, model in zip(STAGES, names, models):
            fids = []
            for steps in ([1] if stage == STUDENT else args.steps):
                start = time.perf_counter()
                images = model.generate(args.num, sampler="euler", num_steps=steps,
                                        seed=args.seed, progress=False)
                seconds = time.perf_counter() - start
                result = evaluator.evaluate(images, data=args.data)
                fids.append(result["fid"])
                print(f"| {label} | {stage} ({name}) | {steps} | {result['fid']:.2f} | "
                      f"{floor:.2f} | {result['fid'] / floor:.2f} | "
                      f"{result['confident_rate']:.1%} | "
                      f"{100 * seconds / args.num:.2f} |", flush=True)
            if stage == STUDENT:
                continue  # one step: no curve, and no path to measure
            curves[f"{label} {stage}"] = fids
            noise = np.random.default_rng(args.seed + 1).standard_normal(
                (256,) + model.image_shape).astype("float32")
            straight[f"{label} {stage}"] = straightness(model, noise, num_steps=16)
        if args.figures:
            _figures(args.figures, label, models[:2], args.seed)
    print()
    print("| model | straightness (16 Euler steps, 256 paths) |")
    print("| --- | --- |")
    for key, value in straight.items():
        print(f"| {key} | {value:.4f} |")
    if args.results:
        import json
        import os

        kept = {}
        if os.path.exists(args.results):
            with open(args.results) as file:
                kept = json.load(file)
        kept.update({key: {"steps": args.steps, "fid": fids}
                     for key, fids in curves.items()})
        with open(args.results, "w") as file:
            json.dump(kept, file, indent=1)
        curves = {key: value["fid"] for key, value in kept.items()}
    if args.plot:
        _plot(args.plot, args.steps, curves, floor, args.num)
        print(f"wrote {args.plot}")


def _figures(directory, label, models, seed, columns=10):
    import os

    from keras_diffusion.viz import save_image_grid

    flow1, flow2 = models
    noise = np.random.default_rng(seed).standard_normal(
        (columns,) + flow1.image_shape).astype("float32")
    samples = flow1.to_images(flow1.sample_from_noise(
        noise, "euler", 16, progress=False))
    start = flow1.to_images(noise)  # decoded for a latent flow
    path = os.path.join(directory, f"flow_{label}_noise_vs_samples.png")
    save_image_grid(np.concatenate([start, samples]), path, num_columns=columns)
    print(f"wrote {path}")
    rows = []
    for model in (flow1, flow2):
        for steps in (1, 2, 4):
            rows.append(model.to_images(model.sample_from_noise(
                noise, "euler", steps, progress=False)))
    path = os.path.join(directory, f"flow_{label}_flow1_vs_flow2.png")
    save_image_grid(np.concatenate(rows), path, num_columns=columns)
    print(f"wrote {path}")


def _plot(path, steps, curves, floor, num):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_diffusion.viz import save_figure

    figure, axis = plt.subplots(figsize=(6, 4))
    for key, fids in curves.items():
        axis.plot(steps, fids, marker="o", label=key,
                  linestyle="--" if "Flow-1" in key else "-")
    axis.axhline(floor, color="gray", linewidth=1, label=f"floor ({num} real)")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xticks(steps, [str(s) for s in steps])
    axis.set_xlabel("Euler steps")
    axis.set_ylabel(f"FID ({num} samples)")
    axis.legend(fontsize=8)
    save_figure(figure, path)


if __name__ == "__main__":
    main()
