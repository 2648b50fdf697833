"""The one place where sampling needs a gradient: `grad_x log p(y | x_t, t)`.

Each backend differentiates in its own way, so this module holds the only
per-backend autodiff code of the package. It works eagerly and inside each
backend's compiled sampling step (`keras_diffusion.utils.compile`):
`tf.GradientTape` inside `tf.function`, `jax.grad` inside `jax.jit` (over a
`keras.StatelessScope`), and `torch.autograd.grad` under `torch.enable_grad`
(the compiled step runs under `torch.no_grad`).
"""

import keras
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
