"""VAE reconstruction error on the MNIST test set, and the docs figure.

    python benchmarks/vae_quality.py --model vae --data PATH \
        [--figure docs/images/vae_reconstructions.png]

Encodes every test image to its latent mean, decodes it, and prints the
mean squared error and PSNR in the [0, 1] pixel range. Then the most a
latent model on this VAE can reach: the FID (shipped evaluator) of the
reconstructions of the first `--num` training digits against as many test
digits, beside the FID of those training digits themselves (the
real-vs-real floor). The figure shows 10 test digits (top row) over their
reconstructions (bottom row).
"""

import argparse

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vae")
    parser.add_argument("--data", default=None)
    parser.add_argument("--figure", default=None)
    parser.add_argument("--num", type=int, default=1000,
                        help="training digits for the reconstruction FID")
    args = parser.parse_args()

    import keras

    import keras_diffusion
    from keras_diffusion.data import load_mnist
    from keras_diffusion.data import to_model_range
    from keras_diffusion.metrics import Evaluator
    from keras_diffusion.models import VAE
    from keras_diffusion.viz import save_image_grid

    vae = keras_diffusion.load_model(args.model, expected_type=VAE)

    def reconstruct(images):
        return np.concatenate([
            keras.ops.convert_to_numpy(vae.reconstruct(images[start : start + 500]))
            for start in range(0, len(images), 500)
        ])

    images = to_model_range(load_mnist(args.data, "test")[0])
    reconstructions = reconstruct(images)
    originals01, reconstructions01 = (images + 1) / 2, (reconstructions + 1) / 2
    mse = float(np.mean((originals01 - reconstructions01) ** 2))
    per_image = np.mean((originals01 - reconstructions01) ** 2, axis=(1, 2, 3))
    psnr = float(np.mean(10 * np.log10(1.0 / np.maximum(per_image, 1e-10))))
    print(f"VAE {args.model} on {len(images)} MNIST test images: "
          f"MSE {mse:.4f}, PSNR {psnr:.2f} dB (pixels in [0, 1]; PSNR "
          "averaged per image)")
    evaluator = Evaluator.load()
    train = to_model_range(load_mnist(args.data, "train")[0][: args.num])
    fid = evaluator.fid((reconstruct(train) + 1) / 2, data=args.data)
    floor = evaluator.floor(len(train), data=args.data)
    print(f"FID of the reconstructions of the first {len(train)} training "
          f"digits: {fid:.2f}; of those digits themselves (the floor): "
          f"{floor:.2f}")
    if args.figure:
        save_image_grid(np.concatenate([originals01[:10], reconstructions01[:10]]),
                        args.figure, num_columns=10)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
