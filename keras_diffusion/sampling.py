"""`sample()`: the library function behind `kd sample`."""

import os

import numpy as np

from keras_diffusion.models import DDPM
from keras_diffusion.pretrained import load_model
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_dir
from keras_diffusion.viz import save_image_grid

OUTPUT_FORMATS = (".png", ".npz")
DEFAULT_GUIDANCE = 4.0
PER_CLASS_DEFAULT = 8


def check_output_path(out):
    """Validates an output path before any work is done."""
    extension = os.path.splitext(out)[1].lower()
    if extension not in OUTPUT_FORMATS:
        raise ValueError(
            f"Output {out!r} must end in .png (an image grid) or .npz "
            "(the images as float32 in [0, 1])."
        )
    check_writable_dir(os.path.dirname(os.path.abspath(out)), create=False)


def sample(model="cfg", sampler="ddim", num_steps=None, num_images=None, seed=0,
           out="samples.png", eta=0.0, label=None, guidance=None, progress=True):
    """Samples from a model and writes a PNG grid or an `.npz` of images.

    Args:
        model: a shipped model name, a `.keras` path, or a model object.
        sampler: `"ddpm"` or `"ddim"`.
        num_steps: int, denoising steps (default: T for DDPM, 50 for DDIM).
        num_images: int (default 16; for a class-conditional model without
            `label`, 8 per class).
        seed: int, seeds all sampling noise (same images on every backend).
        out: `.png` (grid) or `.npz` (`images`: float32 `(N, 28, 28, 1)` in
            [0, 1], and `labels` for class-conditional models) path, written
            atomically.
        eta: float, DDIM's stochasticity.
        label: int class for a class-conditional model; `None` samples every
            class, one grid row per class.
        guidance: float >= 0, classifier-free guidance weight (default 4).
        progress: bool, show a progress bar.

    Returns:
        `(images, labels)`: images in [0, 1]; labels or `None`.
    """
    if num_images is not None and int(num_images) < 1:
        raise ValueError(f"--num must be >= 1. Got {num_images}")
    if num_steps is not None and int(num_steps) < 1:
        raise ValueError(f"--steps must be >= 1. Got {num_steps}")
    if guidance is not None and guidance < 0:
        raise ValueError(f"--guidance must be >= 0. Got {guidance}")
    check_output_path(out)
    if not isinstance(model, DDPM):
        model = load_model(model, expected_type=DDPM)
    if label is not None and not model.conditional:
        raise ValueError("--class needs a class-conditional model; this one is "
                         "unconditional.")
    if guidance is not None and not model.conditional:
        raise ValueError("--guidance needs a class-conditional model; this one is "
                         "unconditional.")
    if label is not None and not 0 <= label < model.num_classes:
        raise ValueError(
            f"--class must be in 0-{model.num_classes - 1}. Got {label}"
        )
    model.make_sampler(sampler, num_steps, eta)  # validates the step count
    labels, num_columns = None, None
    if model.conditional:
        if label is None:
            per_class = PER_CLASS_DEFAULT if num_images is None else max(
                1, -(-int(num_images) // model.num_classes))
            labels = np.repeat(np.arange(model.num_classes), per_class)
            num_columns = per_class
        else:
            labels = np.full((num_images or 16,), label)
        guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    num_images = len(labels) if labels is not None else (num_images or 16)
    images = model.generate(
        num_images, sampler=sampler, num_steps=num_steps, eta=eta, seed=seed,
        progress=progress, labels=labels, guidance=guidance,
    )
    if out.lower().endswith(".npz"):
        arrays = {"images": images.astype("float32")}
        if labels is not None:
            arrays["labels"] = labels.astype("int64")
        with atomic_path(out) as tmp:
            np.savez(tmp, **arrays)
    else:
        save_image_grid(images, out, num_columns=num_columns)
    return images, labels
