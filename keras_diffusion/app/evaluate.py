"""`evaluate()`: the library function behind `kd evaluate`."""

import os
import time

import numpy as np

from keras_diffusion.app.sample import resolve_conditioning
from keras_diffusion.guidance import classifier_sampler
from keras_diffusion.metrics import as_evaluator
from keras_diffusion.models import SAMPLING_MODELS
from keras_diffusion.presets import load_model
from keras_diffusion.presets import read_metadata
from keras_diffusion.presets import resolve_model_path
from keras_diffusion.utils.checks import check_int
from keras_diffusion.utils.io import read_npz


def evaluate(model=None, samples=None, sampler=None, num_steps=None,
             num_images=1000, seed=0, data=None, progress=False, label=None,
             guidance=None, classifier=None, classifier_scale=None,
             evaluator=None):
    """Scores a model's samples, or a file of images, with an evaluator.

    Pass exactly one of `model` (sampled here) and `samples` (an `.npz`).
    The model, the evaluator and the real images' features are all loaded
    before any sampling, so a bad argument fails at once, not after minutes.

    Args:
        model: a shipped model name, a `.keras` path, or a `DDPM` or
            `RectifiedFlow` (or their latent versions) to sample
            `num_images` images from.
        samples: path of an `.npz` holding `images`, float32
            `(N, H, W, C)` in [0, 1] of the evaluator's image shape (as
            `kd sample --out FILE.npz` writes), and optionally `labels`,
            ints `(N,)`.
        sampler: `"ddpm"`, `"ddim"`, `"dpm"` or `"dpm-sde"` for a
            diffusion model, `"euler"` or `"heun"` for a flow (with `model`
            only); `None` means the model's `default_sampler`.
        num_steps: int, sampling steps (default: T for DDPM, 50 for DDIM,
            10 for DPM-Solver++, 16 for Euler (1 for a one-step student),
            8 for Heun).
        num_images: int, images to sample (with `model` only).
        seed: int, seeds the sampling noise.
        data: the real images to compare with, any source
            `keras_diffusion.data.load_images` reads (split by
            `load_splits`); `None`: the evaluator's saved reference
            features (the shipped one holds 10,000 MNIST train and test
            digits), else MNIST through tensorflow-datasets.
        progress: bool, show a sampling progress bar.
        label: for a class-conditional model, the class of every sample;
            `None` samples the classes in turn (equal counts).
        guidance: float >= 0, classifier-free guidance weight for a
            class-conditional model (default: `guidance.DEFAULT_GUIDANCE`).
        classifier: a shipped name, `.keras` path or `NoisyClassifier`:
            classifier guidance of an unconditional pixel-space DDPM toward
            `label` (`None`: the classes in turn, equal counts).
        classifier_scale: float >= 0, the classifier guidance scale
            (default: `guidance.DEFAULT_CLASSIFIER_SCALE`). Without
            `sampler`, classifier guidance samples with `CLASSIFIER_SAMPLER`
            in `CLASSIFIER_STEPS` (`classifier_sampler`).
        evaluator: the judge, anything `keras_diffusion.metrics.as_evaluator`
            takes: a shipped name, a `.keras` path or preset directory from
            `kd train evaluator` (with the reference features it saved), or
            an `Evaluator`; `None`: the one a preset's metadata names
            (`evaluator_of`; the shipped Fashion-MNIST models name theirs),
            else the shipped MNIST `evaluator`.

    Returns:
        A dict: `num`, `fid` (against as many real test images), `floor`
        (real train vs test images, same count), `confident_rate`,
        `accuracy` (`None` without labels), `sampling_seconds`, `sampler`,
        `num_steps` and `seed` (the last four `None` for `samples`).
    """
    if (model is None) == (samples is None):
        raise ValueError(
            "Pass exactly one of `model` (a model to sample from) and "
            "`samples` (an .npz of images); got "
            f"{'both' if model is not None else 'neither'}."
        )
    if evaluator is None and model is not None and not isinstance(
            model, SAMPLING_MODELS):
        evaluator = evaluator_of(model)
    evaluator = as_evaluator(evaluator)
    labels = None
    if samples is not None:
        images, labels = load_samples(samples, evaluator.image_shape)
        num_images = len(images)
    else:
        num_images = check_int("num_images", num_images)
        if num_steps is not None:
            check_int("num_steps", num_steps)
        if not isinstance(model, SAMPLING_MODELS):
            model = load_model(model, expected_type=SAMPLING_MODELS)
        evaluator.check_image_shape(model.output_image_shape,
                                    "The model's samples")
        conditioning, _ = resolve_conditioning(
            model, num_images, label, guidance, classifier, classifier_scale,
            order="cycle")
        labels, guidance = conditioning.labels, conditioning.guidance
        classifier = conditioning.classifier
        classifier_scale = conditioning.classifier_scale
        if classifier is not None:
            sampler, num_steps = classifier_sampler(sampler, num_steps)
        sampler = model.default_sampler if sampler is None else sampler
        num_steps = model.make_sampler(sampler, num_steps).num_steps  # validates

    evaluator.floor(num_images, data)  # loads and caches the real features

    sampling_seconds = None
    if model is not None:
        start = time.perf_counter()
        images = model.generate(int(num_images), sampler=sampler,
                                num_steps=num_steps, seed=seed, progress=progress,
                                labels=labels, guidance=guidance,
                                classifier=classifier,
                                classifier_scale=classifier_scale)
        sampling_seconds = time.perf_counter() - start

    result = evaluator.evaluate(images, labels=labels, data=data)
    result.update(
        sampling_seconds=sampling_seconds,
        sampler=None if model is None else sampler,
        num_steps=None if model is None else int(num_steps),
        seed=None if model is None else int(seed),
        guidance=guidance,
        classifier_scale=classifier_scale,
    )
    return result


def evaluator_of(model):
    """The evaluator a model's preset names in its `metadata.json`
    (`"evaluator"`: a shipped name), or `None` (a `.keras` file, or a
    preset that names none)."""
    path = resolve_model_path(model)
    if not os.path.isdir(path):
        return None
    return read_metadata(path).get("evaluator")


def load_samples(path, image_shape=(28, 28, 1)):
    """Reads `images` (and `labels`, if present) from a samples `.npz`;
    the images must be `(N,) + image_shape` (the evaluator's)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"Samples file {path!r} does not exist; write one with "
            "`kd sample --num N --out FILE.npz`."
        )
    arrays = read_npz(path, "samples")
    if "images" not in arrays:
        raise ValueError(
            f"{path!r} has no `images` array (it holds: "
            f"{', '.join(sorted(arrays)) or 'nothing'}); `kd sample --out "
            "FILE.npz` writes one."
        )
    images = arrays["images"]
    image_shape = tuple(image_shape)
    if images.ndim == 3 and image_shape[-1] == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != image_shape or len(images) == 0:
        raise ValueError(
            f"`images` in {path!r} has shape {images.shape}; the evaluator "
            f"reads (N, {', '.join(map(str, image_shape))}) with N >= 1 (for "
            "other images, pass the evaluator trained on their data)."
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"`images` in {path!r} has dtype {images.dtype}; expected floats "
            "in [0, 1]."
        )
    if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
        raise ValueError(
            f"`images` in {path!r} must be finite and in [0, 1] (as `kd sample` "
            f"writes them). Got values from {images.min():.3g} to "
            f"{images.max():.3g}."
        )
    labels = arrays.get("labels")
    if labels is not None and (labels.shape != (len(images),)
                               or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(
            f"`labels` in {path!r} has shape {labels.shape} and dtype "
            f"{labels.dtype}; expected ints of shape ({len(images)},)."
        )
    return images, labels
