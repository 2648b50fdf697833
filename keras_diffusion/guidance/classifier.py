"""Classifier guidance (Dhariwal & Nichol, 2021): an unconditional DDPM
steered toward a class by the gradient of a classifier of noisy images.

`check_classifier` says whether a model and a classifier go together,
`classifier_guided_model_fn` is the sampling step's network with the
guidance, and `classifier_log_prob_gradient` is the one place where
sampling needs a gradient, `grad_x log p(y | x_t, t)`.

Each backend differentiates in its own way, so this module holds the only
per-backend autodiff code of the package. It works eagerly and inside each
backend's compiled sampling step (`keras_diffusion.utils.compile`):
`tf.GradientTape` inside `tf.function`, `jax.grad` inside `jax.jit` (over a
`keras.StatelessScope`), and `torch.autograd.grad` under `torch.enable_grad`
(the compiled step runs under `torch.no_grad`).

| code                | paper                                  |
| ------------------- | -------------------------------------- |
| `pred_noises`       | epsilon_theta(x_t, t)                  |
| `noise_rates`       | sqrt(1 - alpha_bar_t)                  |
| `gradients`         | grad_x log p_phi(y | x_t, t)           |
| `classifier_scale`  | s                                      |
"""

import keras
import numpy as np
from keras import ops


def classifier_log_prob_gradient(classifier, x, t, labels):
    """The gradient of `log p(labels | x, t)` with respect to the images `x`.

    Computes `log_softmax(classifier.logits(x, t))` at each image's target
    class, sums over the batch and differentiates with respect to `x`. The
    classifier must treat the images of a batch independently (no batch
    statistics), so that the summed gradient is each image's own gradient.
    Classifier guidance shifts a DDPM's noise prediction by it:
    `eps_hat = eps - scale * sqrt(1 - alpha_bar_t) * gradient`.

    Args:
        classifier: an object with `logits(noisy_images, timesteps)`
            returning `(batch, num_classes)` logits, such as
            `keras_diffusion.models.NoisyClassifier`.
        x: float tensor `(batch, height, width, channels)`, noisy images x_t.
        t: int timestep(s), a scalar or `(batch,)`.
        labels: int tensor `(batch,)`, the target classes.

    Returns:
        A float tensor shaped like `x`.

    Example:
    >>> gradient = classifier_log_prob_gradient(classifier, x_t, 500, labels)
    >>> gradient.shape == x_t.shape
    True
    """
    labels = ops.reshape(ops.cast(labels, "int32"), (-1, 1))

    def total_log_prob(images):
        log_probs = ops.log_softmax(classifier.logits(images, t), axis=-1)
        return ops.sum(ops.take_along_axis(log_probs, labels, axis=-1))

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x, "float32")
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = total_log_prob(x)
        return tape.gradient(total, x)
    if backend == "jax":
        import jax

        return jax.grad(total_log_prob)(ops.convert_to_tensor(x, "float32"))
    if backend == "torch":
        import torch

        with torch.enable_grad():
            x = ops.convert_to_tensor(x, "float32").detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(total_log_prob(x), x)
        return gradient
    raise ValueError(
        f"Classifier guidance supports the tensorflow, jax and torch backends. "
        f"Got {backend!r}"
    )


def check_classifier(model, classifier=None):
    """Raises `ValueError` unless `classifier` guidance can steer `model`.

    Classifier guidance needs an unconditional pixel-space DDPM (a model
    with `predict_noise` and a noise `schedule`, no VAE) and, if given, a
    `NoisyClassifier` of images of the model's shape, trained with the
    model's noise schedule. Without `classifier`, only the model is
    checked, so that a wrong model fails before a classifier is loaded.
    """
    name = type(model).__name__
    if not hasattr(model, "predict_noise"):
        raise ValueError(
            "Classifier guidance steers an unconditional pixel-space DDPM; a "
            f"{name} cannot use it."
        )
    if model.conditional:
        raise ValueError(
            "Classifier guidance steers an unconditional model; this one is "
            "class-conditional: use classifier-free guidance (`guidance`) "
            "instead."
        )
    if getattr(model, "vae", None) is not None:
        raise ValueError(
            f"Classifier guidance needs a pixel-space DDPM; a {name} samples "
            "latents, which the noisy-image classifier cannot read."
        )
    if classifier is None:
        return
    if not callable(getattr(classifier, "logits", None)) or not hasattr(
            classifier, "schedule"):
        raise ValueError(
            "The classifier must be a NoisyClassifier (`kd train "
            f"classifier`). Got a {type(classifier).__name__}"
        )
    if classifier.image_shape != model.image_shape:
        raise ValueError(
            f"The classifier reads images of shape {classifier.image_shape}, "
            f"but this model samples {model.image_shape}."
        )
    if classifier.schedule.num_timesteps != model.schedule.num_timesteps or (
        not np.allclose(classifier.schedule.alphas_cumprod,
                        model.schedule.alphas_cumprod)
    ):
        raise ValueError(
            f"The classifier was trained with the schedule "
            f"{classifier.schedule!r}, but this model uses {model.schedule!r}; "
            "train the classifier with the model's schedule."
        )


def classifier_guided_model_fn(model, classifier):
    """The sampling step's network of `model` with classifier guidance.

    Returns `(samples, t, context) -> eps_hat`, where `context` holds
    `"labels"` and `"classifier_scale"` (`Conditioning.context`) and
    `eps_hat = eps - scale * sqrt(1 - alpha_bar_t) * grad_x log p(y | x_t, t)`.
    Every noise-prediction sampler (DDPM, DDIM, DPM-Solver++) integrates
    `eps_hat` as it would the model's own prediction. The step stays
    compiled on every backend: the gradient is taken inside `tf.function`,
    `jax.jit` and the no-grad PyTorch step alike.

    Args:
        model: a `DDPM` that `check_classifier` accepts.
        classifier: its `NoisyClassifier`.
    """
    check_classifier(model, classifier)

    def model_fn(samples, t, context):
        pred_noises = model.predict_noise(samples, t)
        gradients = classifier_log_prob_gradient(classifier, samples, t,
                                                 context["labels"])
        return pred_noises - (
            context["classifier_scale"] * model.schedule.noise_rates(t)
            * ops.cast(gradients, pred_noises.dtype)
        )

    return model_fn
