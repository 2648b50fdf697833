"""`sample()`: the library function behind `kd sample`."""

import math
import os

import numpy as np

from keras_diffusion.models import SAMPLING_MODELS
from keras_diffusion.pretrained import load_model
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_file
from keras_diffusion.viz import save_image_grid

OUTPUT_FORMATS = (".png", ".npz")
MAX_SEED = 2**32 - 1
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
    check_writable_file(out)


def check_seed(seed):
    """Raises `ValueError` unless `seed` is an int in 0 to 2**32 - 1."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"--seed must be in 0 to {MAX_SEED}. Got {seed}")


def sample(model="cfg", sampler=None, num_steps=None, num_images=None, seed=0,
           out="samples.png", eta=0.0, label=None, guidance=None, progress=True):
    """Samples from a model and writes a PNG grid or an `.npz` of images.

    Args:
        model: a shipped model name, a `.keras` path, or a model object (a
            `DDPM` or a `RectifiedFlow`, or their latent versions).
        sampler: `"ddpm"` or `"ddim"` for a diffusion model, `"euler"` or
            `"heun"` for a flow; `None` means the model's default (DDIM,
            Euler).
        num_steps: int, sampling steps (default: T for DDPM, 50 for DDIM,
            16 for Euler, 8 for Heun).
        num_images: int (default 16; for a class-conditional model without
            `label`, 8 per class).
        seed: int, seeds all sampling noise (same images on every backend).
        out: `.png` (grid) or `.npz` (`images`: float32 `(N, 28, 28, 1)` in
            [0, 1], and `labels` for class-conditional models) path, written
            atomically.
        eta: float in [0, 1], DDIM's stochasticity (1: DDPM's noise level).
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
    if guidance is not None and not (guidance >= 0 and math.isfinite(guidance)):
        raise ValueError(f"--guidance must be >= 0 (and finite). Got {guidance}")
    if not 0 <= eta <= 1:  # also refuses NaN
        raise ValueError(
            f"--eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM's noise "
            f"level). Got {eta}"
        )
    check_seed(seed)
    check_output_path(out)
    if not isinstance(model, SAMPLING_MODELS):
        model = load_model(model, expected_type=SAMPLING_MODELS)
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
        # Through a file object: given a name, np.savez appends ".npz" to
        # one that does not end in exactly that (say "x.NPZ").
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    else:
        save_image_grid(images, out, num_columns=num_columns)
    return images, labels
