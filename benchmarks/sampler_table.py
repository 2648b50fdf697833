"""Quality and speed of one model under several sampler settings.

    python benchmarks/sampler_table.py --model ldm --data PATH \
        --settings ddpm:1000 ddim:10 ddim:20 ddim:50 ddim:100 [--num 1000]
    python benchmarks/sampler_table.py --model cfg --data PATH \
        --settings ddim:50 --guidance 0 1 2 4 8
    python benchmarks/sampler_table.py --model ddpm --data PATH \
        --settings ddim:50 dpm:5 dpm:10 dpm:20
    python benchmarks/sampler_table.py --model rf-pixel --data PATH \
        --settings euler:8 heun:4 --shifts 1 3
    python benchmarks/sampler_table.py --model ddpm --data PATH \
        --settings ddim:50 dpm-sde:10 --pred-noise-scales 1 1.04

For each setting (`sampler:steps` with any sampler the model takes, such
as `ddim:50` or `dpm:10`, and each guidance weight for a class-conditional
model, whose samples cycle through the ten classes; and each time-grid
shift of `--shifts` for a flow, its `sampling_shift`, and each scale of
`--pred-noise-scales` for a diffusion model, its `pred_noise_scale`), it
samples `--num` images with the same seed, times the sampling, scores the
images with the shipped evaluator (`kd evaluate`'s figures: FID against
`--num` MNIST test images, the real-vs-real floor at that count, the
confident rate, and the class accuracy for conditional models), and prints
one Markdown table row per setting. `--figure PATH` also writes a grid with
one row per setting (the first `--figure-columns` images, same seeds).
Sampling times include compiling the step once (a few seconds).
"""

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Shipped name or .keras path.")
    parser.add_argument("--data", default=None,
                        help="the real images (default: the evaluator's saved "
                             "reference features)")
    parser.add_argument("--evaluator", default=None,
                        help="evaluator name or path (default: the shipped MNIST one)")
    parser.add_argument("--settings", nargs="+", default=["ddim:50"])
    parser.add_argument("--guidance", type=float, nargs="*", default=None)
    parser.add_argument("--shifts", type=float, nargs="+", default=None,
                        help="a flow's time-grid shifts to compare (its "
                             "`sampling_shift`; default: the model's own)")
    parser.add_argument("--pred-noise-scales", type=float, nargs="+", default=None,
                        help="a diffusion model's noise-prediction scales to "
                             "compare (its `pred_noise_scale`; default: the "
                             "model's own)")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default=None)
    parser.add_argument("--figure-columns", type=int, default=10)
    parser.add_argument("--plot", default=None,
                        help="PNG of FID and class accuracy against guidance.")
    args = parser.parse_args()

    import keras
    from _tables import model_with_floor
    from _tables import print_header

    from keras_diffusion.viz import save_image_grid

    model, evaluator, floor, labels = model_with_floor(args.model, args.num,
                                                       args.data, args.evaluator)
    weights = args.guidance if labels is not None and args.guidance else [None]
    if labels is not None and weights == [None]:
        weights = [4.0]
    if args.shifts and not hasattr(model, "sampling_shift"):
        parser.error(f"--shifts applies to flows; {args.model} is a "
                     f"{type(model).__name__}")
    shifts = args.shifts or [getattr(model, "sampling_shift", None)]
    if args.pred_noise_scales and not hasattr(model, "pred_noise_scale"):
        parser.error(f"--pred-noise-scales applies to diffusion models; "
                     f"{args.model} is a {type(model).__name__}")
    scales = args.pred_noise_scales or [getattr(model, "pred_noise_scale", None)]

    print(f"model {args.model}, backend {keras.backend.backend()}, "
          f"{args.num} samples, seed {args.seed}; floor {floor:.2f}")
    header = ("| sampler | steps | guidance | shift | noise scale | FID | floor | confident "
              "| accuracy | lowest class accuracy | s / 100 images |")
    print_header(header)
    rows, curve = [], []
    settings = [(setting, shift, scale) for setting in args.settings
                for shift in shifts for scale in scales]
    for setting, shift, scale in settings:
        sampler, steps = setting.split(":")
        if shift is not None:
            model.sampling_shift = shift
        if scale is not None:
            model.pred_noise_scale = scale
        for guidance in weights:
            def sample(count):
                extra = ({} if labels is None
                         else {"labels": labels[:count], "guidance": guidance})
                return model.generate(count, sampler=sampler, num_steps=int(steps),
                                      seed=args.seed, progress=False, **extra)

            start = time.perf_counter()
            images = sample(args.num)
            seconds = time.perf_counter() - start
            result = evaluator.evaluate(images, labels=labels, data=args.data)
            accuracy = lowest = "-"
            if result["accuracy"] is not None:
                accuracy = f"{result['accuracy']:.1%}"
                per_class = result["class_accuracy"]
                worst = min(per_class, key=per_class.get)
                lowest = f"{per_class[worst]:.1%} (class {worst})"
            shown_shift = "-" if shift is None else f"{shift:g}"
            shown_scale = "-" if scale is None else f"{scale:g}"
            print(f"| {sampler} | {steps} | {'-' if guidance is None else guidance:} | "
                  f"{shown_shift} | {shown_scale} | {result['fid']:.2f} | {floor:.2f} | "
                  f"{result['confident_rate']:.1%} | {accuracy} | {lowest} | "
                  f"{100 * seconds / args.num:.2f} |", flush=True)
            rows.append(images[: args.figure_columns])
            curve.append((guidance, result["fid"], result["accuracy"]))
    if args.figure:
        save_image_grid(np.concatenate(rows), args.figure,
                        num_columns=args.figure_columns)
        print(f"wrote {args.figure}")
    if args.plot:
        _plot_guidance(args.plot, curve, floor, args.num)
        print(f"wrote {args.plot}")


def _plot_guidance(path, curve, floor, num):
    """FID (left axis) and class accuracy (right axis) against guidance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_diffusion.viz import save_figure

    weights = [w for w, _, _ in curve]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(weights, [fid for _, fid, _ in curve], marker="o", color="C0", label="FID")
    axis.axhline(floor, color="C0", linestyle=":", linewidth=1, label="FID floor")
    axis.set_xlabel("guidance weight w")
    axis.set_ylabel(f"FID ({num} samples)", color="C0")
    if all(accuracy is not None for _, _, accuracy in curve):
        other = axis.twinx()
        other.plot(weights, [100 * a for _, _, a in curve], marker="s", color="C1")
        other.set_ylabel("class accuracy (%)", color="C1")
    axis.legend(loc="upper center", fontsize=8)
    save_figure(figure, path)


if __name__ == "__main__":
    main()
