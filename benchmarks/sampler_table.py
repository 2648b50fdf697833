"""Quality and speed of one model under several sampler settings.

    python benchmarks/sampler_table.py --model ldm --data PATH \
        --settings ddpm:1000 ddim:10 ddim:20 ddim:50 ddim:100 [--num 1000]
    python benchmarks/sampler_table.py --model cfg --data PATH \
        --settings ddim:50 --guidance 0 1 2 4 8

For each setting (`sampler:steps`, and each guidance weight for a
class-conditional model, whose samples cycle through the ten classes), it
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
    parser.add_argument("--data", default=None, help="MNIST IDX directory or .npz.")
    parser.add_argument("--settings", nargs="+", default=["ddim:50"])
    parser.add_argument("--guidance", type=float, nargs="*", default=None)
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default=None)
    parser.add_argument("--figure-columns", type=int, default=10)
    args = parser.parse_args()

    import keras

    import keras_diffusion
    from keras_diffusion.metrics import Evaluator
    from keras_diffusion.viz import save_image_grid

    model = keras_diffusion.load_model(args.model)
    evaluator = Evaluator.load()
    floor = evaluator.floor(args.num, args.data)
    labels = None
    if getattr(model, "conditional", False):
        labels = np.arange(args.num) % model.num_classes
    weights = args.guidance if labels is not None and args.guidance else [None]
    if labels is not None and weights == [None]:
        weights = [4.0]

    print(f"model {args.model}, backend {keras.backend.backend()}, "
          f"{args.num} samples, seed {args.seed}; floor {floor:.2f}")
    header = "| sampler | steps | guidance | FID | floor | confident | accuracy | s / 100 images |"
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    rows = []
    for setting in args.settings:
        sampler, steps = setting.split(":")
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
            accuracy = "-" if result["accuracy"] is None else f"{result['accuracy']:.1%}"
            print(f"| {sampler} | {steps} | {'-' if guidance is None else guidance:} | "
                  f"{result['fid']:.2f} | {floor:.2f} | {result['confident_rate']:.1%} | "
                  f"{accuracy} | {100 * seconds / args.num:.2f} |", flush=True)
            rows.append(images[: args.figure_columns])
    if args.figure:
        save_image_grid(np.concatenate(rows), args.figure,
                        num_columns=args.figure_columns)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
