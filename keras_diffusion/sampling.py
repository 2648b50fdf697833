"""`sample()`: the library function behind `kd sample`."""

import os

import numpy as np

from keras_diffusion.guidance import check_classifier_scale
from keras_diffusion.guidance import check_guidance
from keras_diffusion.models import SAMPLING_MODELS
from keras_diffusion.pretrained import load_model
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_file
from keras_diffusion.viz import save_animation
from keras_diffusion.viz import save_image_grid
from keras_diffusion.viz.animation import check_animation_path

OUTPUT_FORMATS = (".png", ".npz")
MAX_SEED = 2**32 - 1
DEFAULT_GUIDANCE = 4.0
PER_CLASS_DEFAULT = 8
# Classifier guidance scale of `kd sample/evaluate --classifier` (see
# docs/classifier_guidance.md for the sweep that chose it).
DEFAULT_CLASSIFIER_SCALE = 5.0
# Classifier guidance steers far better with DDPM's stochastic steps than
# with deterministic DDIM (the fresh noise corrects what the gradient pushes
# off the digits; see docs/classifier_guidance.md), so without --sampler it
# uses DDPM with this many steps.
CLASSIFIER_SAMPLER = "ddpm"
CLASSIFIER_STEPS = 50
ANIMATION_FRAMES = 50  # at most: the sampling steps shown, then the final grid


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


def class_rows(num_classes, num_images=None):
    """`(labels, num_columns)` to sample every class, sorted by class.

    `num_images` exactly (default `PER_CLASS_DEFAULT` per class), as evenly
    shared as it divides; `num_columns` puts one class per grid row when
    every class has as many images, else it is `None` (the default grid).
    """
    if num_images is None:
        num_images = PER_CLASS_DEFAULT * num_classes
    labels = np.sort(np.arange(int(num_images)) % num_classes)
    even = num_images % num_classes == 0
    return labels, (num_images // num_classes if even else None)


def classifier_sampler(sampler=None, num_steps=None):
    """`(sampler, num_steps)` for classifier guidance: DDPM with 50 steps
    unless a sampler is given (then its own default step count)."""
    if sampler is None:
        return CLASSIFIER_SAMPLER, CLASSIFIER_STEPS if num_steps is None else num_steps
    return sampler, num_steps


def load_classifier(model, classifier):
    """The `NoisyClassifier` to guide `model` with, loaded and checked.

    Checks first that `model` takes classifier guidance (an unconditional
    pixel-space DDPM), so that a wrong model fails before any loading.

    Args:
        model: the model to sample from.
        classifier: a shipped name, a `.keras` path or a `NoisyClassifier`.
    """
    from keras_diffusion.models import NoisyClassifier

    model.check_classifier()
    if not isinstance(classifier, NoisyClassifier):
        classifier = load_model(classifier, expected_type=NoisyClassifier)
    model.check_classifier(classifier)
    return classifier


def sample(model="cfg", sampler=None, num_steps=None, num_images=None, seed=0,
           out="samples.png", eta=0.0, label=None, guidance=None, progress=True,
           animate=None, classifier=None, classifier_scale=None):
    """Samples from a model and writes a PNG grid or an `.npz` of images.

    Args:
        model: a shipped model name, a `.keras` path, or a model object (a
            `DDPM` or a `RectifiedFlow`, or their latent versions).
        sampler: `"ddpm"`, `"ddim"` or `"dpm"` for a diffusion model,
            `"euler"` or `"heun"` for a flow; `None` means the model's
            default (DDIM, Euler).
        num_steps: int, sampling steps (default: T for DDPM, 50 for DDIM,
            10 for DPM-Solver++, 16 for Euler, 8 for Heun).
        num_images: int (default 16; for a class-conditional model without
            `label`, 8 per class). Exactly this many: without `label`, the
            classes share them as evenly as they divide (`class_rows`).
        seed: int, seeds all sampling noise (same images on every backend).
        out: `.png` (grid) or `.npz` (`images`: float32 `(N, 28, 28, 1)` in
            [0, 1], and `labels` for class-conditional models) path, written
            atomically.
        eta: float in [0, 1], DDIM's stochasticity (1: DDPM's noise level).
        label: int class for a class-conditional model; `None` samples every
            class, one grid row per class.
        guidance: float >= 0, classifier-free guidance weight (default 4).
        progress: bool, show a progress bar.
        animate: optional `.gif` path: also write an animation of the
            sampling, one grid of the model's current prediction of the
            final images per step (at most 49 steps, evenly spaced), then the
            final grid, held longer (see `keras_diffusion.viz.save_animation`).
        classifier: a shipped name, `.keras` path or `NoisyClassifier`:
            classifier guidance of an unconditional pixel-space DDPM toward
            `label` (`None`: every class, one grid row per class).
        classifier_scale: float >= 0, the classifier guidance scale
            (default `DEFAULT_CLASSIFIER_SCALE`; 0 is unguided). Without
            `sampler`, classifier guidance samples with DDPM in 50 steps
            (`classifier_sampler`).

    Returns:
        `(images, labels)`: images in [0, 1]; labels or `None`.
    """
    if num_images is not None and int(num_images) < 1:
        raise ValueError(f"--num must be >= 1. Got {num_images}")
    if num_steps is not None and int(num_steps) < 1:
        raise ValueError(f"--steps must be >= 1. Got {num_steps}")
    check_guidance(guidance)
    if not 0 <= eta <= 1:  # also refuses NaN
        raise ValueError(
            f"`eta` must be in [0, 1] (0: deterministic DDIM, 1: DDPM's noise "
            f"level). Got {eta}"
        )
    check_classifier_scale(classifier_scale)
    if classifier_scale is not None and classifier is None:
        raise ValueError("`classifier_scale` needs `classifier` (a noisy-image "
                         "classifier, such as the shipped `classifier`).")
    check_seed(seed)
    check_output_path(out)
    if animate is not None:
        check_animation_path(animate)
        check_writable_file(animate)
        if os.path.abspath(animate) == os.path.abspath(out):
            raise ValueError("--animate and --out must be different files.")
    if not isinstance(model, SAMPLING_MODELS):
        model = load_model(model, expected_type=SAMPLING_MODELS)
    if classifier is not None:
        classifier = load_classifier(model, classifier)
        sampler, num_steps = classifier_sampler(sampler, num_steps)
    if label is not None and not model.conditional and classifier is None:
        raise ValueError("--class needs a class-conditional model (or "
                         "--classifier, for classifier guidance); this one is "
                         "unconditional.")
    if guidance is not None and not model.conditional:
        raise ValueError("--guidance needs a class-conditional model; this one is "
                         "unconditional.")
    num_classes = model.num_classes if classifier is None else classifier.num_classes
    if label is not None and not 0 <= label < num_classes:
        raise ValueError(
            f"`label` must be in 0-{num_classes - 1} (this model has "
            f"{num_classes} classes). Got {label}"
        )
    model.make_sampler(sampler, num_steps, eta)  # validates the step count
    labels, num_columns = None, None
    if model.conditional or classifier is not None:
        if label is None:
            labels, num_columns = class_rows(num_classes, num_images)
        else:
            labels = np.full((num_images or 16,), label)
        if classifier is None:
            guidance = DEFAULT_GUIDANCE if guidance is None else guidance
        elif classifier_scale is None:
            classifier_scale = DEFAULT_CLASSIFIER_SCALE
    num_images = len(labels) if labels is not None else (num_images or 16)
    images = model.generate(
        num_images, sampler=sampler, num_steps=num_steps, eta=eta, seed=seed,
        progress=progress, labels=labels, guidance=guidance,
        classifier=classifier, classifier_scale=classifier_scale,
        return_trajectory=animate is not None,
        trajectory_frames=ANIMATION_FRAMES - 1,
    )
    if animate is not None:
        images, trajectory = images
        save_animation(trajectory, animate, final=images, num_columns=num_columns)
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
