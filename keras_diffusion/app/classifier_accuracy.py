"""`accuracy_vs_t()`: how well a noisy-image classifier reads `x_t`."""

from keras_diffusion.data import load_mnist
from keras_diffusion.data import to_model_range
from keras_diffusion.models import NoisyClassifier
from keras_diffusion.presets import load_model

DEFAULT_TIMESTEPS = (0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999)


def accuracy_vs_t(classifier="classifier", data=None, timesteps=DEFAULT_TIMESTEPS,
                  num_images=None, seed=0, batch_size=500):
    """Accuracy of a `NoisyClassifier` on MNIST test digits noised to each `t`.

    Every test image is noised once, `x_t = sqrt(alpha_bar_t) * x_0 +
    sqrt(1 - alpha_bar_t) * eps` with `eps` from
    `numpy.random.default_rng(seed)` (so the figures are the same under every
    backend), at each timestep of `timesteps`, and classified.

    Args:
        classifier: a `NoisyClassifier`, or its shipped name or `.keras` path.
        data: `None` (tensorflow-datasets) or an MNIST IDX directory or
            `.npz`, as for `keras_diffusion.data.load_mnist`.
        timesteps: ints in 0 .. T-1.
        num_images: int, the first test images to use (default: all).
        seed: int, seeds the noise.
        batch_size: int, images per forward pass.

    Returns:
        A list of `(t, accuracy)` pairs.

    Example:
    >>> accuracy_vs_t("classifier", data="../shared/data/mnist", timesteps=[0, 500])
    [(0, 0.98...), (500, 0.8...)]
    """
    if not isinstance(classifier, NoisyClassifier):
        classifier = load_model(classifier, expected_type=NoisyClassifier)
    if num_images is not None and int(num_images) < 1:
        raise ValueError(f"`num_images` must be >= 1. Got {num_images}")
    images, labels = load_mnist(data, "test")
    if num_images is not None:
        images, labels = images[: int(num_images)], labels[: int(num_images)]
    accuracies = classifier.accuracy(to_model_range(images), labels, timesteps,
                                     seed=seed, batch_size=batch_size)
    return list(zip([int(t) for t in timesteps], accuracies))
