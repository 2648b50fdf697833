"""Train a rectified flow on MNIST with `model.fit`, then sample a grid.

    python examples/flow_from_python.py --data path/to/mnist
    python examples/flow_from_python.py --data path/to/mnist --conditional

The flow learns the straight-line velocity from noise to images and samples
with Euler steps (see docs/rectified_flow.md). With --conditional the UNet
takes the digit as a third input, `fit` gets the labels, and sampling uses
classifier-free guidance, one grid row per digit. Without --data, MNIST
comes from tensorflow-datasets (needs internet). Runs unchanged under
KERAS_BACKEND=tensorflow, jax or torch; `tests/test_examples.py` runs it
with tiny settings.
"""

import argparse

import keras
import numpy as np

import keras_diffusion as kd
from keras_diffusion.data import load_mnist
from keras_diffusion.data import to_model_range
from keras_diffusion.viz import save_image_grid


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train a rectified flow, then sample.")
    parser.add_argument("--data", default=None,
                        help="MNIST IDX directory or .npz (default: "
                             "tensorflow-datasets, which needs internet).")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None,
                        help="Train on the first LIMIT images only.")
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64],
                        help="UNet channels per resolution level.")
    parser.add_argument("--conditional", action="store_true",
                        help="Class-conditional flow, sampled with guidance.")
    parser.add_argument("--guidance", type=float, default=2.0,
                        help="Classifier-free guidance weight (--conditional).")
    parser.add_argument("--sampling-steps", type=int, default=16,
                        help="Euler steps.")
    parser.add_argument("--per-class", type=int, default=8,
                        help="Images per digit (--conditional); otherwise "
                             "10 times this many images.")
    parser.add_argument("--out", default="flow_samples.png",
                        help="The grid of samples (.png).")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(0)
    images, labels = load_mnist(args.data)
    images = to_model_range(images[: args.limit])  # (N, 28, 28, 1) in [-1, 1]
    labels = labels[: args.limit]

    network = kd.UNet(widths=tuple(args.widths),
                      attention_levels=(len(args.widths) - 1,),
                      num_classes=10 if args.conditional else None)
    model = kd.RectifiedFlow(network, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    if args.conditional:
        model.fit(images, labels, batch_size=args.batch_size, epochs=args.epochs)
        rows = np.repeat(np.arange(10), args.per_class)  # one row per digit
        samples = model.generate(len(rows), sampler="euler",
                                 num_steps=args.sampling_steps, seed=0,
                                 labels=rows, guidance=args.guidance)
    else:
        model.fit(images, batch_size=args.batch_size, epochs=args.epochs)
        samples = model.generate(10 * args.per_class, sampler="euler",
                                 num_steps=args.sampling_steps, seed=0)
    save_image_grid(samples, args.out, num_columns=args.per_class)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
