"""Accuracy of the noisy-image classifier against the noise level t.

    KERAS_BACKEND=tensorflow python benchmarks/classifier_accuracy_vs_t.py \
        --data ../shared/data/mnist [--classifier classifier] \
        [--figure docs/images/classifier_accuracy_vs_t.png]

Noises every MNIST test digit (`--num`, default all) to each timestep t of the
linear schedule (T = 1000), once, with NumPy noise from `--seed`, classifies
it with the `NoisyClassifier` (`kd train classifier`; default the shipped
one) and prints one Markdown table row per t: alpha_bar_t, the signal rate
sqrt(alpha_bar_t), the noise rate sqrt(1 - alpha_bar_t) and the accuracy
(`keras_diffusion.app.classifier_accuracy.accuracy_vs_t`). `--figure` also plots
accuracy against t.
"""

import argparse
import time

import numpy as np

TIMESTEPS = (0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600, 650,
             700, 800, 900, 999)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", default="classifier",
                        help="Shipped name or .keras path.")
    parser.add_argument("--data", default=None, help="MNIST IDX directory or .npz.")
    parser.add_argument("--num", type=int, default=None,
                        help="Test digits to use (default: all).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, nargs="+", default=list(TIMESTEPS))
    parser.add_argument("--figure", default=None, help="PNG of accuracy against t.")
    args = parser.parse_args()

    import keras

    from keras_diffusion.app.classifier_accuracy import accuracy_vs_t
    from keras_diffusion.models import NoisyClassifier
    from keras_diffusion.presets import load_model

    classifier = load_model(args.classifier, expected_type=NoisyClassifier)
    start = time.perf_counter()
    table = accuracy_vs_t(classifier, data=args.data, timesteps=args.timesteps,
                          num_images=args.num, seed=args.seed)
    seconds = time.perf_counter() - start
    alpha_bars = classifier.schedule.alphas_cumprod
    print(f"classifier {args.classifier}, backend {keras.backend.backend()}, "
          f"{args.num or 'all'} test digits, seed {args.seed}, "
          f"{seconds:.0f} s")
    print("| t | alpha_bar_t | signal rate | noise rate | accuracy |")
    print("| --- | --- | --- | --- | --- |")
    for t, accuracy in table:
        print(f"| {t} | {alpha_bars[t]:.4f} | {np.sqrt(alpha_bars[t]):.3f} | "
              f"{np.sqrt(1 - alpha_bars[t]):.3f} | {accuracy:.1%} |")
    if args.figure:
        _plot(args.figure, table)
        print(f"wrote {args.figure}")


def _plot(path, table):
    """Accuracy (%) against t, with chance (10%) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_diffusion.viz import save_figure

    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot([t for t, _ in table], [100 * a for _, a in table], marker="o")
    axis.axhline(10, color="gray", linestyle=":", linewidth=1, label="chance")
    axis.set_xlabel("timestep t (noise grows to the right)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_ylim(0, 100)
    axis.set_title("Noisy-image classifier on MNIST test digits x_t")
    axis.legend(loc="upper right", fontsize=8)
    axis.grid(alpha=0.3)
    save_figure(figure, path)


if __name__ == "__main__":
    main()
