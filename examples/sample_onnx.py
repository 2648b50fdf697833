"""Sample digits from a `kd export` directory with NumPy and onnxruntime only.

    kd export --model cfg --format onnx --out cfg_onnx
    python examples/sample_onnx.py cfg_onnx --class 3 --seed 0 --out three.png

No Keras, TensorFlow, JAX or PyTorch: `pip install numpy onnxruntime` is
all it needs (the PNG is written with zlib). It runs the sampler that
`sampler.json` describes (DPM-Solver++ or DDIM for a diffusion model,
Euler or Heun for a flow) with the exported denoising network, decodes
latents with the exported VAE decoder, and writes a PNG grid (one row per digit without
--class, as `kd sample` does) or, for an `.npz` path, the images as float32
in [0, 1]. The noise, the labels, the steps and the guidance are those of
`kd sample` with the same flags, so the images are `kd sample`'s (to float
rounding; `tests/test_export.py` checks it).
"""

import argparse
import json
import os
import struct
import sys
import zlib

import numpy as np
import onnxruntime


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Sample from a kd export with onnxruntime.")
    parser.add_argument("export_dir", help="Directory written by `kd export`.")
    parser.add_argument("--class", dest="label", type=int, default=None,
                        help="Digit to generate (class-conditional models); "
                             "without it, one row per digit.")
    parser.add_argument("--guidance", type=float, default=None,
                        help="Classifier-free guidance weight (default: kd "
                             "sample's, 4).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num", type=int, default=None,
                        help="Number of images (default 16; 8 per class "
                             "without --class).")
    parser.add_argument("--out", default="samples.png",
                        help=".png grid or .npz of images in [0, 1].")
    return parser.parse_args(argv)


def load_export(export_dir):
    """`(spec, denoiser, decoder)`: sampler.json and the ONNX sessions."""
    path = os.path.join(export_dir, "sampler.json")
    if not os.path.isfile(path):
        sys.exit(f"{export_dir} is not a `kd export` directory (no sampler.json).")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    if spec.get("format") != "onnx":
        sys.exit(f"{export_dir} holds a {spec.get('format')} export; this "
                 "script runs `kd export --format onnx`.")

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only (not "unused initializer")

    def session(name):
        path = os.path.join(export_dir, spec["files"][name])
        return onnxruntime.InferenceSession(path, options,
                                            providers=["CPUExecutionProvider"])

    decoder = session("decoder") if "decoder" in spec["files"] else None
    return spec, session("denoiser"), decoder


def make_labels(spec, label, num):
    """The labels of `kd sample`: one class, or every class in rows."""
    classes = spec["num_classes"]
    if classes is None:
        if label is not None:
            sys.exit("--class needs a class-conditional model; this one is "
                     "unconditional.")
        return None, num or spec["default_num_images"], None
    if label is None:
        per_class = spec["per_class_default"] if num is None else max(
            1, -(-num // classes))
        labels = np.repeat(np.arange(classes), per_class)
        return labels, len(labels), per_class
    if not 0 <= label < classes:
        sys.exit(f"--class must be in 0-{classes - 1}. Got {label}")
    labels = np.full((num or spec["default_num_images"],), label)
    return labels, len(labels), None


def sample(spec, denoiser, noise, labels=None, guidance=None):
    """Runs the exported sampler from `noise`; returns the final samples."""
    sampler = spec["sampler"]
    feed = {}
    if labels is not None:
        feed["labels"] = labels.astype(np.int32)
        feed["guidance"] = np.array([guidance], np.float32)

    def network(x, time):
        feed.update(x=x, t=np.array([time], np.float32))
        return denoiser.run(None, feed)[0]

    # Diffusion samplers scale the noise predictions (`DDPMSampler`'s
    # `pred_noise_scale`); a flow's is always 1.
    noise_scale = np.float32(sampler.get("pred_noise_scale", 1.0))

    def noise_network(x, time):
        return noise_scale * network(x, time)

    x = noise
    images_last = np.zeros_like(noise)  # DPM-Solver++'s previous estimate
    for step in sampler["steps"]:
        if sampler["name"] == "dpm":
            x, images_last = dpm_step(noise_network, x, step,
                                      sampler["clip_sample"], images_last)
        elif sampler["name"] == "ddim":
            x = ddim_step(noise_network, x, step, sampler["clip_sample"])
        elif sampler["name"] == "euler":
            dt = np.float32(step["t_next"]) - np.float32(step["t"])
            x = x + dt * network(x, step["time"])
        else:  # heun; the last step, to t = 1, is the Euler guess alone
            dt = np.float32(step["t_next"]) - np.float32(step["t"])
            velocity = network(x, step["time"])
            guess = x + dt * velocity
            if step["t_next"] >= 1:
                x = guess
            else:
                x = x + (np.float32(0.5) * dt) * (
                    velocity + network(guess, step["time_next"]))
    return x


def predict_images(network, x, step, clip_sample):
    """`(x_0 estimate, predicted noise)` at a step, as `DDPMSampler.predict_images`."""
    alpha_bar = np.float32(step["alpha_bar"])
    noise = network(x, step["time"])
    images = (x - np.sqrt(np.float32(1) - alpha_bar) * noise) / np.sqrt(alpha_bar)
    if clip_sample:
        images = np.clip(images, -1, 1)
    return images, noise


def dpm_step(network, x, step, clip_sample, images_last):
    """DPM-Solver++(2M), as `DPMSolverSampler.step`: `(x_next, x_0 estimate)`."""
    images, _ = predict_images(network, x, step, clip_sample)
    d1 = np.float32(step["inverse_r"]) * (images - images_last)
    x = (np.float32(step["coef_samples"]) * x
         + np.float32(step["coef_images"]) * (images + np.float32(0.5) * d1))
    return x, images


def ddim_step(network, x, step, clip_sample):
    """DDIM with eta 0 (Song et al., 2021, eq. 12), as `DDIMSampler.step`."""
    alpha_bar = np.float32(step["alpha_bar"])
    images, noise = predict_images(network, x, step, clip_sample)
    if clip_sample:
        noise = (x - np.sqrt(alpha_bar) * images) / np.sqrt(np.float32(1) - alpha_bar)
    return (np.sqrt(np.float32(step["alpha_bar_prev"])) * images
            + np.float32(step["direction"]) * noise)


def to_images(spec, samples, decoder=None):
    """Samples -> images in [0, 1] (decoding a latent model's latents)."""
    if decoder is not None:
        latents = samples / np.float32(spec["latent_scale"])
        samples = decoder.run(None, {"latents": latents})[0]
    return np.clip((samples + 1) / 2, 0, 1)


def in_batches(function, batch_size, *arrays):
    """`function` over batches of exactly `batch_size` (the graphs' batch)."""
    count = len(arrays[0])
    outputs = []
    for start in range(0, count, batch_size):
        batch = [array[start:start + batch_size] for array in arrays]
        real = len(batch[0])
        batch = [np.concatenate([b, np.zeros((batch_size - real,) + b.shape[1:],
                                             b.dtype)]) for b in batch]
        outputs.append(function(*batch)[:real])
    return np.concatenate(outputs)


def write_png(images, path, num_columns=None, padding=2, scale=2):
    """A grayscale PNG grid, laid out as `kd sample`'s."""
    images = images[..., 0]
    count, height, width = images.shape
    num_columns = num_columns or int(np.ceil(np.sqrt(count)))
    num_rows = int(np.ceil(count / num_columns))
    grid = np.ones((num_rows * (height + padding) + padding,
                    num_columns * (width + padding) + padding), np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, num_columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[top:top + height, left:left + width] = image
    grid = np.kron(grid, np.ones((scale, scale), np.float32))
    # The 8-bit values of matplotlib's gray colormap, as `kd sample` writes them.
    levels = (np.linspace(0, 1, 256) * 255).astype(np.uint8)
    pixels = levels[np.minimum(np.clip(grid, 0, 1) * 256, 255).astype(np.int64)]

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def main(argv=None):
    args = parse_args(argv)
    if not args.out.lower().endswith((".png", ".npz")):
        sys.exit(f"--out {args.out!r} must end in .png or .npz.")
    if args.num is not None and args.num < 1:
        sys.exit(f"--num must be >= 1. Got {args.num}")
    if not 0 <= args.seed < 2**32:
        sys.exit(f"--seed must be in 0 to {2**32 - 1}. Got {args.seed}")
    if args.guidance is not None and not args.guidance >= 0:
        sys.exit(f"--guidance must be >= 0. Got {args.guidance}")
    spec, denoiser, decoder = load_export(args.export_dir)
    labels, num_images, num_columns = make_labels(spec, args.label, args.num)
    guidance = spec["default_guidance"] if args.guidance is None else args.guidance
    if labels is None and args.guidance is not None:
        sys.exit("--guidance needs a class-conditional model.")
    rng = np.random.default_rng(args.seed)
    noise = rng.standard_normal(
        (num_images,) + tuple(spec["sample_shape"])).astype(np.float32)
    batch_size = spec["batch_size"]
    if labels is None:
        samples = in_batches(lambda x: sample(spec, denoiser, x), batch_size, noise)
    else:
        samples = in_batches(lambda x, y: sample(spec, denoiser, x, y, guidance),
                             batch_size, noise, labels)
    images = in_batches(lambda x: to_images(spec, x, decoder), batch_size, samples)
    images = images.astype(np.float32)
    if args.out.lower().endswith(".npz"):
        arrays = {"images": images}
        if labels is not None:
            arrays["labels"] = labels.astype(np.int64)
        with open(args.out, "wb") as f:  # np.savez(name) could add ".npz"
            np.savez(f, **arrays)
    else:
        write_png(images, args.out, num_columns)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
