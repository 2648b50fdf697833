"""`sample()`: the library function behind `kd sample`."""

import os

import numpy as np

from keras_diffusion.guidance import DEFAULT_CLASSIFIER_SCALE
from keras_diffusion.guidance import DEFAULT_GUIDANCE
from keras_diffusion.guidance import Conditioning
from keras_diffusion.guidance import check_classifier
from keras_diffusion.guidance import check_classifier_scale
from keras_diffusion.guidance import check_guidance
from keras_diffusion.guidance import class_labels
from keras_diffusion.guidance import class_rows
from keras_diffusion.guidance import classifier_sampler
from keras_diffusion.guidance import cycled_labels
from keras_diffusion.models import SAMPLING_MODELS
from keras_diffusion.models import NoisyClassifier
from keras_diffusion.presets import load_model
from keras_diffusion.utils.checks import check_int
from keras_diffusion.utils.checks import check_seed
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_file
from keras_diffusion.viz import save_animation
from keras_diffusion.viz import save_image_grid
from keras_diffusion.viz.animation import check_animation_path

OUTPUT_FORMATS = (".png", ".npz")
DEFAULT_NUM_IMAGES = 16
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


def load_classifier(model, classifier):
    """The `NoisyClassifier` to guide `model` with, loaded and checked.

    Checks first that `model` takes classifier guidance (an unconditional
    pixel-space DDPM), so that a wrong model fails before any loading.

    Args:
        model: the model to sample from.
        classifier: a shipped name, a `.keras` path or a `NoisyClassifier`.
    """
    check_classifier(model)
    if not isinstance(classifier, NoisyClassifier):
        classifier = load_model(classifier, expected_type=NoisyClassifier)
    check_classifier(model, classifier)
    return classifier


def resolve_conditioning(model, num_images=None, label=None, guidance=None,
                         classifier=None, classifier_scale=None, order="rows"):
    """A sampling request's `Conditioning`, with the application's defaults.

    Chooses the labels of a request (one class, or every class in the
    order `order`), fills in `DEFAULT_GUIDANCE` or
    `DEFAULT_CLASSIFIER_SCALE` and loads a classifier given by name; the
    checks are `guidance.Conditioning.resolve`'s.

    Args:
        model: the model to sample from.
        num_images: int or `None` (for `order="rows"`: `PER_CLASS_DEFAULT`
            per class without `label`, else `DEFAULT_NUM_IMAGES`).
        label: int class of every image, or `None` for every class.
        guidance: classifier-free guidance weight (class-conditional
            models; default `DEFAULT_GUIDANCE`).
        classifier: classifier guidance of an unconditional pixel-space
            DDPM: a shipped name, `.keras` path or `NoisyClassifier`.
        classifier_scale: its scale (default `DEFAULT_CLASSIFIER_SCALE`).
        order: `"rows"` (every class: sorted, one grid row per class when
            they share the images evenly; `class_rows`) or `"cycle"` (the
            classes in turn; `cycled_labels`).

    Returns:
        `(conditioning, num_columns)`: a `Conditioning` (its `labels` are
        `None` for an unconditional request) and the grid's columns (one
        class per row, or `None`).
    """
    num_classes = model.num_classes
    if classifier is not None:
        check_guidance(guidance)  # before the classifier loads
        check_classifier_scale(classifier_scale)
        classifier = load_classifier(model, classifier)
        num_classes = classifier.num_classes
        if classifier_scale is None:
            classifier_scale = DEFAULT_CLASSIFIER_SCALE
    elif model.conditional and guidance is None:
        guidance = DEFAULT_GUIDANCE
    labels, num_columns = label, None  # unconditional: checked below
    if num_classes is not None:
        if label is not None:
            class_labels(label, 1, num_classes, name="label")  # checks it
            labels = np.full((num_images or DEFAULT_NUM_IMAGES,), label)
        elif order == "rows":
            labels, num_columns = class_rows(num_classes, num_images)
        else:
            labels = cycled_labels(num_classes, num_images)
    count = num_images or DEFAULT_NUM_IMAGES
    if num_classes is not None:
        count = len(labels)
    conditioning = Conditioning.resolve(model, count, labels, guidance,
                                        classifier, classifier_scale)
    return conditioning, num_columns


def sample(model="cfg", sampler=None, num_steps=None, num_images=None, seed=0,
           out="samples.png", eta=0.0, label=None, guidance=None, progress=True,
           animate=None, classifier=None, classifier_scale=None):
    """Samples from a model and writes a PNG grid or an `.npz` of images.

    Args:
        model: a shipped model name, a `.keras` path, or a model object (a
            `DDPM` or a `RectifiedFlow`, or their latent versions).
        sampler: `"ddpm"`, `"ddim"`, `"dpm"` or `"dpm-sde"` for a
            diffusion model, `"euler"` or `"heun"` for a flow; `None` means
            the model's `default_sampler`.
        num_steps: int, sampling steps (default: T for DDPM, 50 for DDIM,
            10 for DPM-Solver++, 16 for Euler (1 for a one-step student),
            8 for Heun).
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
            `sampler`, classifier guidance samples with `CLASSIFIER_SAMPLER`
            in `CLASSIFIER_STEPS` (`classifier_sampler`).

    Returns:
        `(images, labels)`: images in [0, 1]; labels or `None`.
    """
    if num_images is not None:
        check_int("num_images", num_images)
    if num_steps is not None:
        check_int("num_steps", num_steps)
    if not 0 <= eta <= 1:  # also refuses NaN
        raise ValueError(
            f"`eta` must be in [0, 1] (0: deterministic DDIM, 1: DDPM's noise "
            f"level). Got {eta}"
        )
    check_seed(seed)
    check_output_path(out)
    if animate is not None:
        check_animation_path(animate)
        check_writable_file(animate)
        if os.path.abspath(animate) == os.path.abspath(out):
            raise ValueError("`animate` and `out` must be different files.")
    if not isinstance(model, SAMPLING_MODELS):
        model = load_model(model, expected_type=SAMPLING_MODELS)
    conditioning, num_columns = resolve_conditioning(
        model, num_images, label, guidance, classifier, classifier_scale)
    if conditioning.classifier is not None:
        sampler, num_steps = classifier_sampler(sampler, num_steps)
    model.make_sampler(sampler, num_steps, eta)  # validates the step count
    labels = conditioning.labels
    num_images = len(labels) if labels is not None else (
        num_images or DEFAULT_NUM_IMAGES)
    images = model.generate(
        num_images, sampler=sampler, num_steps=num_steps, eta=eta, seed=seed,
        progress=progress, labels=labels, guidance=conditioning.guidance,
        classifier=conditioning.classifier,
        classifier_scale=conditioning.classifier_scale,
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
