"""`sample()`: the library function behind `kd sample`."""

import os

import numpy as np

from keras_diffusion.models import DDPM
from keras_diffusion.pretrained import load_model
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_dir
from keras_diffusion.viz import save_image_grid

OUTPUT_FORMATS = (".png", ".npz")


def check_output_path(out):
    """Validates an output path before any work is done."""
    extension = os.path.splitext(out)[1].lower()
    if extension not in OUTPUT_FORMATS:
        raise ValueError(
            f"Output {out!r} must end in .png (an image grid) or .npz "
            "(the images as float32 in [0, 1])."
        )
    check_writable_dir(os.path.dirname(os.path.abspath(out)), create=False)


def sample(model="ddpm", sampler="ddim", num_steps=None, num_images=16, seed=0,
           out="samples.png", eta=0.0, progress=True):
    """Samples from a model and writes a PNG grid or an `.npz` of images.

    Args:
        model: a shipped model name, a `.keras` path, or a model object.
        sampler: `"ddpm"` or `"ddim"`.
        num_steps: int, denoising steps (default: T for DDPM, 50 for DDIM).
        num_images: int.
        seed: int, seeds all sampling noise (same images on every backend).
        out: `.png` (grid) or `.npz` (`images`: float32 `(N, 28, 28, 1)` in
            [0, 1]) path, written atomically.
        eta: float, DDIM's stochasticity.
        progress: bool, show a progress bar.

    Returns:
        The images, a NumPy array in [0, 1].
    """
    if int(num_images) < 1:
        raise ValueError(f"--num must be >= 1. Got {num_images}")
    if num_steps is not None and int(num_steps) < 1:
        raise ValueError(f"--steps must be >= 1. Got {num_steps}")
    check_output_path(out)
    if not isinstance(model, DDPM):
        model = load_model(model, expected_type=DDPM)
    step_sampler = model.make_sampler(sampler, num_steps, eta)  # validates steps
    images = model.generate(
        num_images, sampler=sampler, num_steps=step_sampler.num_steps, eta=eta,
        seed=seed, progress=progress,
    )
    if out.lower().endswith(".npz"):
        with atomic_path(out) as tmp:
            np.savez(tmp, images=images.astype("float32"))
    else:
        save_image_grid(images, out)
    return images
