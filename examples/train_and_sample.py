"""Train a small DDPM on MNIST with `model.fit`, then sample a grid.

    python examples/train_and_sample.py --data path/to/mnist
    python examples/train_and_sample.py --data path/to/mnist --tf-data
    KERAS_BACKEND=jax python examples/train_and_sample.py --epochs 2

Without --data, MNIST comes from tensorflow-datasets (needs internet). The
script runs unchanged under KERAS_BACKEND=tensorflow, jax or torch: the
model is a plain `keras.Model`, so `fit` takes NumPy arrays or a `tf.data`
pipeline on every backend. `tests/test_examples.py` runs it with tiny
settings.
"""

import argparse

import keras

import keras_diffusion as kd
from keras_diffusion.data import load_mnist
from keras_diffusion.data import to_model_range
from keras_diffusion.viz import save_image_grid


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train a DDPM, then sample.")
    parser.add_argument("--data", default=None,
                        help="MNIST IDX directory or .npz (default: "
                             "tensorflow-datasets, which needs internet).")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None,
                        help="Train on the first LIMIT images only.")
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64],
                        help="UNet channels per resolution level.")
    parser.add_argument("--tf-data", action="store_true",
                        help="Feed fit() a tf.data pipeline instead of arrays.")
    parser.add_argument("--sampling-steps", type=int, default=50,
                        help="DDIM steps.")
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--out", default="ddpm_samples.png",
                        help="The grid of samples (.png).")
    parser.add_argument("--save", default=None,
                        help="Also save the trained model to this .keras path.")
    return parser.parse_args(argv)


def make_pipeline(images, batch_size):
    """A `tf.data` pipeline: shuffle, batch, prefetch (any backend's `fit`
    accepts it)."""
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=0)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(0)
    images, _ = load_mnist(args.data)  # uint8 (N, 28, 28)
    images = to_model_range(images[: args.limit])  # float32 (N, 28, 28, 1) in [-1, 1]

    network = kd.UNet(widths=tuple(args.widths),
                      attention_levels=(len(args.widths) - 1,))
    model = kd.DDPM(network, schedule="linear", seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    if args.tf_data:
        model.fit(make_pipeline(images, args.batch_size), epochs=args.epochs)
    else:
        model.fit(images, batch_size=args.batch_size, epochs=args.epochs)

    samples = model.generate(args.num_images, sampler="ddim",
                             num_steps=args.sampling_steps, seed=0)  # in [0, 1]
    save_image_grid(samples, args.out)
    print(f"Wrote {args.out}")
    if args.save:
        model.save(args.save)
        print(f"Saved {args.save}")


if __name__ == "__main__":
    main()
