"""Classifier guidance of the unconditional DDPM: a sweep of the scale.

    KERAS_BACKEND=tensorflow python benchmarks/classifier_guidance_sweep.py \
        --data ../shared/data/mnist --scales 0 1 2 5 10 20 \
        [--sampler ddpm --steps 50] \
        [--plot docs/images/classifier_guidance_sweep.png] \
        [--figure docs/images/classifier_guidance_samples.png]

For each scale it does what

    kd evaluate --model ddpm --classifier classifier --classifier-scale S \
        --sampler ddpm --steps 50 --num 1000 --data ../shared/data/mnist

does (the same `generate` and `Evaluator.evaluate` calls as
`keras_diffusion.app.evaluate.evaluate`, with the model and classifier
loaded once): samples `--num` images (seed `--seed`) with `--sampler` and
`--steps` (default: classifier guidance's, `guidance.CLASSIFIER_SAMPLER`
in `CLASSIFIER_STEPS`; `--pred-noise-scale`, the `generate` argument,
default unscaled; `--temperature T` guides with `log softmax(logits / T)`,
a push that fades later as the classifier grows sure, for comparison;
several `--classifier`s guide with the mean of their log probabilities,
and the agreement column is the first one's), the classes
in turn (100 per class for 1,000), steered by the classifier, and scores
them with the shipped evaluator. It prints one Markdown table row per scale:
FID (against as many MNIST test digits), the real-vs-real floor, the class
accuracy, the lowest per-class accuracy and its class, the confident rate,
the share of samples that the guiding classifier itself reads as their
class at t = 0, and the sampling time. `--plot` draws FID and the accuracies against the
scale; `--figure` writes a grid with one row per scale (digits 0-9, the
first ten samples of each row of the table).
"""

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ddpm", help="Shipped name or .keras path.")
    parser.add_argument("--classifier", nargs="+", default=["classifier"],
                        help="Shipped name or .keras path; several guide "
                             "together, with the mean of their log "
                             "probabilities.")
    parser.add_argument("--data", default=None, help="MNIST IDX directory or .npz.")
    parser.add_argument("--scales", type=float, nargs="+", default=[0, 1, 2, 5, 10])
    parser.add_argument("--sampler", default=None,
                        help="ddpm, ddim, dpm or dpm-sde (default: classifier "
                             "guidance's, dpm-sde in 10 steps).")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--pred-noise-scale", type=float, default=None,
                        help="the model's noise-prediction scale while guided "
                             "(default: 1, classifier guidance's)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="guide with the classifier's logits divided by "
                             "this (default 1: the classifier as it is)")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None,
                        help="PNG of FID and class accuracy against the scale.")
    parser.add_argument("--figure", default=None,
                        help="PNG grid: one row per scale, digits 0-9.")
    args = parser.parse_args()
    if not args.temperature > 0:
        parser.error(f"--temperature must be > 0. Got {args.temperature}")

    import keras

    from keras_diffusion.app.sample import classifier_sampler
    from keras_diffusion.app.sample import load_classifier
    from keras_diffusion.guidance import cycled_labels
    from keras_diffusion.metrics import as_evaluator
    from keras_diffusion.models import DDPM
    from keras_diffusion.presets import load_model

    model = load_model(args.model, expected_type=DDPM)
    classifiers = [load_classifier(model, name) for name in args.classifier]
    classifier = classifiers[0]
    guide = classifier if len(classifiers) == 1 else _Ensemble(classifiers)
    if args.temperature != 1.0:
        guide = _Tempered(guide, args.temperature)
    evaluator = as_evaluator(None)
    labels = cycled_labels(classifier.num_classes, args.num)
    args.sampler, args.steps = classifier_sampler(args.sampler, args.steps)
    print(f"model {args.model}, classifier {' + '.join(args.classifier)}, backend "
          f"{keras.backend.backend()}, {args.sampler} {args.steps} steps, "
          f"{args.num} samples, seed {args.seed}, temperature {args.temperature:g}")
    header = ("| scale | FID | floor | class accuracy | lowest class accuracy "
              "| confident | classifier agrees (t = 0) | sampling time |")
    print(header)
    print("|" + " --- |" * (header.count("|") - 1), flush=True)
    results, rows = [], []
    for scale in args.scales:
        start = time.perf_counter()
        images = model.generate(args.num, sampler=args.sampler, num_steps=args.steps,
                                seed=args.seed, progress=False, labels=labels,
                                classifier=guide, classifier_scale=scale,
                                pred_noise_scale=args.pred_noise_scale)
        seconds = time.perf_counter() - start
        result = evaluator.evaluate(images, labels=labels, data=args.data)
        per_class = result["class_accuracy"]
        worst = min(per_class, key=per_class.get)
        print(f"| {scale:g} | {result['fid']:.2f} | {result['floor']:.2f} | "
              f"{result['accuracy']:.1%} | {per_class[worst]:.1%} (class {worst}) | "
              f"{result['confident_rate']:.1%} | "
              f"{_classifier_agreement(classifier, images, labels):.1%} | "
              f"{seconds:.0f} s |", flush=True)
        results.append((scale, result))
        rows.append(images[:10])
    if args.plot:
        _plot(args.plot, results, args.num)
        print(f"wrote {args.plot}")
    if args.figure:
        from keras_diffusion.viz import save_image_grid

        save_image_grid(np.concatenate(rows), args.figure, num_columns=10)
        print(f"wrote {args.figure}")


class _Tempered:
    """A `NoisyClassifier` whose logits are divided by `temperature`: its
    `log softmax` gradient fades more slowly as the class grows sure."""

    def __init__(self, classifier, temperature):
        self.classifier = classifier
        self.temperature = temperature

    def __getattr__(self, name):  # schedule, image_shape, num_classes, ...
        return getattr(self.classifier, name)

    def logits(self, noisy_images, timesteps, training=False):
        return self.classifier.logits(noisy_images, timesteps) / self.temperature


class _Ensemble:
    """Several `NoisyClassifier`s as one whose log probabilities are the
    mean of theirs (a product of experts, renormalized): a sample must
    convince every member, not the one whose quirks guidance can exploit."""

    def __init__(self, classifiers):
        self.classifiers = classifiers

    def __getattr__(self, name):  # schedule, image_shape, num_classes, ...
        return getattr(self.classifiers[0], name)

    @property
    def variables(self):
        return [v for c in self.classifiers for v in c.variables]

    def logits(self, noisy_images, timesteps, training=False):
        from keras import ops

        return sum(ops.log_softmax(c.logits(noisy_images, timesteps), axis=-1)
                   for c in self.classifiers) / len(self.classifiers)


def _classifier_agreement(classifier, images01, labels):
    """The share of the samples that the guiding classifier itself reads
    as their class at t = 0 (`NoisyClassifier.accuracy`): against the
    evaluator's class accuracy, it tells a classifier that guidance fooled (it agrees, the
    evaluator does not) from guidance too weak to steer (neither agrees)."""
    return classifier.accuracy(images01 * 2.0 - 1.0, labels, [0])[0]


def _plot(path, results, num):
    """FID (left axis) and class accuracies (right axis) against the scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_diffusion.viz import save_figure

    scales = [scale for scale, _ in results]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(scales, [r["fid"] for _, r in results], marker="o", color="C0",
              label="FID")
    axis.axhline(results[0][1]["floor"], color="C0", linestyle=":", linewidth=1,
                 label="FID floor")
    axis.set_xlabel("classifier scale s")
    axis.set_ylabel(f"FID ({num} samples)", color="C0")
    other = axis.twinx()
    other.plot(scales, [100 * r["accuracy"] for _, r in results], marker="s",
               color="C1", label="class accuracy")
    other.plot(scales, [100 * min(r["class_accuracy"].values()) for _, r in results],
               marker="v", linestyle="--", color="C3", label="lowest class")
    other.set_ylabel("class accuracy (%)", color="C1")
    other.set_ylim(0, 100)
    lines = axis.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], loc="center right",
                fontsize=8)
    axis.set_title("Classifier guidance of the unconditional DDPM")
    save_figure(figure, path)


if __name__ == "__main__":
    main()
