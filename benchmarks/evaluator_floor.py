"""The shipped evaluator on real digits: test accuracy and the FID floor.

    python benchmarks/evaluator_floor.py --data /path/to/mnist [--nums 1000 10000]

Prints the evaluator's class accuracy and confident rate on the whole MNIST
test split, its accuracy on each class, and how often real digits would
pass a class-accuracy goal that guided samples are held to: in 10,000
draws of `--per-class` test digits of each class, the share of draws in
which every class is read right at least `--goal` of the time, and the
median of the weakest class. Then, for each count N, the floor that `kd evaluate` reports
(the FID between the first N real train digits and the first N test
digits), and its spread over disjoint sets of N train digits (as many as
the train split holds, at most 10) against the same N test digits. Last, for
scale, the FID of the first 1,000 train digits after a Gaussian blur and
after mixing with uniform noise. These are the figures in
docs/evaluation.md.
"""

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="MNIST IDX directory or .npz (default: tfds).")
    parser.add_argument("--nums", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--goal", type=float, default=0.97)
    parser.add_argument("--model", default="evaluator",
                        help="Evaluator name or .keras path.")
    args = parser.parse_args()

    import keras

    from keras_diffusion.data import load_mnist
    from keras_diffusion.metrics import Evaluator
    from keras_diffusion.metrics import frechet_distance
    from keras_diffusion.metrics import gaussian_blur

    start = time.perf_counter()
    evaluator = Evaluator.load(args.model)
    train, _ = load_mnist(args.data, "train")
    test, test_labels = load_mnist(args.data, "test")
    train = train[..., None] / np.float32(255.0)
    test = test[..., None] / np.float32(255.0)
    print(f"backend {keras.backend.backend()}, evaluator {args.model}")
    print(f"test accuracy  {evaluator.class_accuracy(test, test_labels):.4f} "
          f"({len(test)} test digits)")
    print(f"confident rate {evaluator.confident_rate(test):.4f} (p >= 0.9)")
    _class_goal(evaluator, test, test_labels, args.per_class, args.goal)

    train_features = evaluator.features(train)
    test_features = evaluator.features(test)
    print(f"{'N':>6}  {'floor':>7}  {'disjoint train sets: mean +- std (min-max)'}")
    for num in args.nums:
        if num > min(len(train), len(test)):
            print(f"{num:>6}  skipped: the data holds {len(train)} train and "
                  f"{len(test)} test digits")
            continue
        floor = evaluator.floor(num, data=args.data)
        spread = [
            frechet_distance(train_features[i * num:(i + 1) * num],
                             test_features[:num])
            for i in range(min(10, len(train) // num))
        ]
        line = f"{num:>6}  {floor:7.3f}"
        if len(spread) > 1:
            line += (f"  {np.mean(spread):.3f} +- {np.std(spread):.3f} "
                     f"({min(spread):.3f}-{max(spread):.3f}, {len(spread)} sets)")
        print(line)
    num = min(1000, len(train), len(test))
    real = train[:num]
    noise = np.random.default_rng(0).uniform(0, 1, real.shape).astype("float32")
    print(f"degraded train digits, FID vs {num} test digits:")
    for sigma in (0.5, 1.0, 2.0):
        fid = evaluator.fid(gaussian_blur(real, sigma), data=args.data)
        print(f"  blur sigma={sigma:<4} {fid:8.2f}")
    for amount in (0.1, 0.3, 0.5):
        fid = evaluator.fid((1 - amount) * real + amount * noise, data=args.data)
        print(f"  noise {amount:.0%}     {fid:8.2f}")
    print(f"({time.perf_counter() - start:.0f} s)")


def _class_goal(evaluator, images01, labels, per_class, goal, draws=10000):
    """Prints each class's accuracy, and how often `per_class` real digits a
    class would have every class at `goal` or above."""
    correct = np.argmax(evaluator.probabilities(images01), axis=-1) == labels
    classes = np.unique(labels)
    print("accuracy per class " + " ".join(
        f"{c}: {np.mean(correct[labels == c]):.4f}" for c in classes))
    rng = np.random.default_rng(0)
    lowest = np.array([
        min(np.mean(correct[rng.choice(np.flatnonzero(labels == c), per_class,
                                       replace=False)]) for c in classes)
        for _ in range(draws)])
    print(f"{per_class} test digits a class, {draws} draws: every class >= "
          f"{goal:.0%} in {np.mean(lowest >= goal - 1e-9):.1%} of draws; "
          f"median weakest class {np.median(lowest):.1%}")


if __name__ == "__main__":
    main()
