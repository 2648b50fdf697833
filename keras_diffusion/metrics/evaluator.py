import os

import numpy as np

from keras_diffusion.data import load_mnist
from keras_diffusion.metrics.frechet_distance import frechet_distance

# (evaluator source, split, data) -> features of the first images of the
# split; the longest computed so far, sliced for shorter requests.
_REFERENCE_FEATURES = {}


class Evaluator:
    """Scores generated digits with the shipped MNIST classifier.

    The judge is a small CNN (`keras_diffusion.networks.MNISTClassifier`,
    trained by `kd train evaluator`). Its 128-d penultimate features give the
    FID against the MNIST test set, and its class probabilities give the
    confident rate (how many samples it reads as some digit with
    probability >= 0.9) and, for samples that should show a given digit, the
    class accuracy. `floor(num)` is the FID of real training digits against
    real test digits at the same count: no model can be expected to do
    better, so read a model's FID against it. See `docs/evaluation.md`.

    Images are float arrays `(N, 28, 28, 1)` (or `(N, 28, 28)`) in [0, 1],
    as `kd sample --out FILE.npz` writes them; they are scaled to [-1, 1]
    and fed `batch_size` at a time.

    Args:
        classifier: a `MNISTClassifier`.
        batch_size: int, images per forward pass.
        source: str, a key under which this process caches the features of
            the real images (default: the classifier object's identity).

    Example:
    >>> evaluator = Evaluator.load()  # the shipped weights
    >>> images = np.load("samples.npz")["images"]
    >>> evaluator.evaluate(images, data="/path/to/mnist")
    {'num': 1000, 'fid': ..., 'floor': ..., 'confident_rate': ..., 'accuracy': None}
    """

    def __init__(self, classifier, batch_size=500, source=None):
        from keras_diffusion.networks import MNISTClassifier

        if not isinstance(classifier, MNISTClassifier):
            raise ValueError(
                "`classifier` must be a MNISTClassifier (see `kd train "
                f"evaluator`). Got {type(classifier).__name__}"
            )
        if int(batch_size) < 1:
            raise ValueError(f"`batch_size` must be >= 1. Got {batch_size}")
        self.classifier = classifier
        self.batch_size = int(batch_size)
        self.source = source or f"object-{id(classifier)}"

    @classmethod
    def load(cls, name_or_path="evaluator", batch_size=500):
        """Loads a classifier by shipped name or `.keras` path."""
        from keras_diffusion.networks import MNISTClassifier
        from keras_diffusion.presets import load_model
        from keras_diffusion.presets import resolve_model_path

        path = os.path.abspath(resolve_model_path(name_or_path))
        classifier = load_model(path, expected_type=MNISTClassifier)
        return cls(classifier, batch_size=batch_size, source=path)

    def probabilities(self, images01):
        """Class probabilities, float32 `(N, 10)`."""
        return self._outputs(images01)["probabilities"]

    def features(self, images01):
        """Penultimate-layer features, float32 `(N, 128)`."""
        return self._outputs(images01)["features"]

    def fid(self, images01, num=None, data=None):
        """FID of `images01` against the first `num` MNIST test images.

        Args:
            images01: images in [0, 1].
            num: int, test images in the reference (default: as many as
                `images01`).
            data: `None` (tensorflow-datasets) or an MNIST path, as for
                `keras_diffusion.data.load_mnist`.
        """
        features = self.features(images01)
        num = len(features) if num is None else num
        return frechet_distance(features, self._reference("test", num, data))

    def floor(self, num, data=None):
        """FID of the first `num` real train images against `num` test images."""
        return frechet_distance(
            self._reference("train", num, data), self._reference("test", num, data)
        )

    def class_accuracy(self, images01, labels):
        """Fraction of images classified as their `labels`."""
        probabilities = self.probabilities(images01)
        labels = _check_labels(labels, len(probabilities))
        return float(np.mean(np.argmax(probabilities, axis=-1) == labels))

    def confident_rate(self, images01, threshold=0.9):
        """Fraction of images whose most likely class has probability >= `threshold`."""
        return _confident_rate(self.probabilities(images01), threshold)

    def evaluate(self, images01, labels=None, data=None):
        """All figures at once (one pass over the images).

        Returns:
            A dict: `num` (images), `fid` (against as many test images),
            `floor` (real train vs test at the same count),
            `confident_rate`, `accuracy` (`None` without `labels`), and
            `class_accuracy`: a dict from each class present in `labels` to
            the accuracy of its images (`None` without `labels`).
        """
        outputs = self._outputs(images01)
        num = len(outputs["features"])
        accuracy = class_accuracy = None
        if labels is not None:
            labels = _check_labels(labels, num)
            correct = np.argmax(outputs["probabilities"], axis=-1) == labels
            accuracy = float(np.mean(correct))
            class_accuracy = {int(label): float(np.mean(correct[labels == label]))
                              for label in np.unique(labels)}
        return {
            "num": num,
            "fid": frechet_distance(
                outputs["features"], self._reference("test", num, data)
            ),
            "floor": self.floor(num, data),
            "confident_rate": _confident_rate(outputs["probabilities"]),
            "accuracy": accuracy,
            "class_accuracy": class_accuracy,
        }

    def _outputs(self, images01):
        images = _check_images(images01, self.classifier.image_shape)
        features, logits = [], []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size] * 2.0 - 1.0
            outputs = self.classifier.predict_on_batch(batch)
            features.append(np.asarray(outputs["features"], dtype="float32"))
            logits.append(np.asarray(outputs["logits"], dtype="float64"))
        logits = np.concatenate(logits)
        logits -= logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        return {
            "features": np.concatenate(features),
            "probabilities": probabilities.astype("float32"),
        }

    def _reference(self, split, num, data):
        """Features of the first `num` real images of `split` (cached)."""
        num = int(num)
        if num < 2:
            raise ValueError(f"FID needs at least 2 images. Got {num}")
        key = (self.source, split, None if data is None else os.path.abspath(data))
        cached = _REFERENCE_FEATURES.get(key)
        if cached is None or len(cached) < num:
            images, _ = load_mnist(data, split)
            if num > len(images):
                raise ValueError(
                    f"Cannot compare {num} images with the MNIST {split} split: "
                    f"it holds {len(images)}. Use at most {len(images)} images."
                )
            cached = self.features(images[:num, :, :, None] / np.float32(255.0))
            _REFERENCE_FEATURES[key] = cached
        return cached[:num]


def _check_images(images, image_shape):
    images = np.asarray(images, dtype="float32")
    if images.ndim == len(image_shape) and image_shape[-1] == 1 and (
        images.shape[1:] == tuple(image_shape[:-1])
    ):
        images = images[..., None]
    if images.ndim != len(image_shape) + 1 or images.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"Images must have shape (N, {', '.join(map(str, image_shape))}). "
            f"Got {images.shape}"
        )
    if len(images) == 0:
        raise ValueError("No images to evaluate (got an empty array).")
    if not np.all(np.isfinite(images)):
        raise ValueError("Images hold NaN or infinite values.")
    low, high = float(images.min()), float(images.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ValueError(
            f"Images must be in [0, 1] (as `kd sample` writes them). Got values "
            f"from {low:.3g} to {high:.3g}."
        )
    return images


def _check_labels(labels, num):
    labels = np.asarray(labels)
    if labels.shape != (num,):
        raise ValueError(
            f"`labels` must have shape ({num},), one per image. Got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must be integers. Got dtype {labels.dtype}")
    return labels


def _confident_rate(probabilities, threshold=0.9):
    if not 0 < threshold <= 1:
        raise ValueError(f"`threshold` must be in (0, 1]. Got {threshold}")
    return float(np.mean(probabilities.max(axis=-1) >= threshold))
