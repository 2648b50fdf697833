"""Where samplers' images differ from real ones, beyond one FID figure.

    KERAS_BACKEND=jax python benchmarks/sample_statistics.py --model ddpm \
        --data ../shared/data/mnist --settings ddim:50 dpm-sde:10 [--num 1000]

For the real test and train images, and for `--num` samples of each
setting (`sampler:steps`, seed `--seed`, as `sampler_table.py` draws them),
it prints one Markdown table row:

- FID against `--num` test images (the train row is the real-vs-real floor);
- the mean-term: the squared distance between the feature means, the part
  of FID that a shift of the whole distribution makes;
- FID with the classes balanced: the images resampled (with replacement,
  fixed seed) so that the evaluator's predicted classes come in the test
  images' proportions. What it removes is the share of FID that comes from
  making some digits too often and others too rarely;
- the confident rate (evaluator probability >= 0.9);
- the share of grey pixels (between 0.1 and 0.9; real digits are nearly
  black and white, so a blurred stroke shows here) and the mean ink;
- how many images the evaluator puts in each class.
"""

import argparse

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Shipped name or .keras path.")
    parser.add_argument("--data", required=True, help="the real MNIST images")
    parser.add_argument("--settings", nargs="+", default=["ddim:50", "dpm-sde:10"])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras
    from _tables import model_with_floor
    from _tables import print_header

    from keras_diffusion.data import load_mnist

    model, evaluator, floor, labels = model_with_floor(args.model, args.num, args.data)
    if labels is not None:
        parser.error("sample_statistics.py compares unconditional samplers; "
                     f"{args.model} is class-conditional.")
    test_images, test_labels = load_mnist(args.data, split="test")
    train_images, _ = load_mnist(args.data, split="train")
    class_counts = np.bincount(test_labels[: args.num], minlength=10)
    print(f"model {args.model}, backend {keras.backend.backend()}, {args.num} "
          f"images, seed {args.seed}; floor {floor:.2f}")
    print_header("| images | FID | mean-term | FID, classes balanced | confident "
                 "| grey pixels | ink | images per class (0-9) |")

    def row(name, images01):
        print(f"| {name} | " + " | ".join(_statistics(
            evaluator, images01, args.num, args.data, class_counts)) + " |",
            flush=True)

    row("real test", _as01(test_images[: args.num]))
    row("real train", _as01(train_images[: args.num]))
    for setting in args.settings:
        sampler, steps = setting.split(":")
        row(setting, model.generate(args.num, sampler=sampler, num_steps=int(steps),
                                    seed=args.seed, progress=False))


def _as01(images):
    return images[..., None].astype("float32") / 255.0


def _statistics(evaluator, images01, num, data, class_counts):
    """The table's cells for one set of images in [0, 1]."""
    from keras_diffusion.metrics import frechet_distance

    reference = evaluator.reference_features("test", num, data)
    features = evaluator.features(images01)
    predicted = np.argmax(evaluator.probabilities(images01), axis=-1)
    rng = np.random.default_rng(0)
    balanced = np.concatenate([
        rng.choice(np.flatnonzero(predicted == label), count, replace=True)
        for label, count in enumerate(class_counts) if np.any(predicted == label)
    ])
    mean_term = np.sum((features.mean(0) - reference.mean(0)) ** 2)
    grey = np.mean((images01 > 0.1) & (images01 < 0.9))
    return [f"{frechet_distance(features, reference):.2f}", f"{mean_term:.2f}",
            f"{frechet_distance(features[balanced], reference):.2f}",
            f"{evaluator.confident_rate(images01):.1%}", f"{grey:.2%}",
            f"{np.mean(images01):.3f}",
            " ".join(str(n) for n in np.bincount(predicted, minlength=10))]


if __name__ == "__main__":
    main()
