import os

import numpy as np

from keras_diffusion.data import load_splits
from keras_diffusion.metrics.frechet_distance import frechet_distance
from keras_diffusion.networks import MNISTClassifier
from keras_diffusion.presets import load_model
from keras_diffusion.presets import resolve_model_path
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import read_npz

# The file of an evaluator's saved reference features (see `reference_path`).
REFERENCE_FILE = "reference.npz"
# Real images per split whose features `compute_reference` keeps by default.
REFERENCE_IMAGES = 10_000
# (evaluator source, split, data) -> features of the first images of the
# split; the longest computed so far, sliced for shorter requests.
_REFERENCE_FEATURES = {}
# The latest source read: (data, image shape) -> its `load_splits`, so
# that the train and the test features of one source (a floor) come from
# one read of it; one entry only, to hold one dataset in memory at most.
_REAL_SPLITS = {}


def reference_path(model_path):
    """Where the reference features of the evaluator at `model_path` are
    saved: `DIR/reference.npz` in a preset directory, `NAME.reference.npz`
    beside a `NAME.keras` file."""
    model_path = os.fspath(model_path)
    if os.path.isdir(model_path):
        return os.path.join(model_path, REFERENCE_FILE)
    return os.path.splitext(model_path)[0] + "." + REFERENCE_FILE


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

    The same holds for any labelled images: `kd train evaluator --data DIR`
    trains the classifier for them (any size, channels and class count),
    and the FID and floor then use the train and test splits of that data
    (`keras_diffusion.data.load_splits`).

    The real images' features ("the reference") come from `data` when it is
    given. Without `data`, they come from the features saved with the
    evaluator (`compute_reference`, `save_reference`: the shipped evaluator
    holds those of the first 10,000 MNIST train and test digits, so it
    scores offline), else from MNIST through tensorflow-datasets.

    Images are float arrays `(N, H, W, C)` (or `(N, H, W)` for one channel)
    of the classifier's `image_shape`, in [0, 1], as `kd sample --out
    FILE.npz` writes them; they are scaled to [-1, 1] and fed `batch_size`
    at a time.

    Args:
        classifier: a `MNISTClassifier`.
        batch_size: int, images per forward pass.
        source: str, a key under which this process caches the features of
            the real images (default: the classifier object's identity).
        reference: `None`, or saved reference features: a dict with
            `"train"` and `"test"`, float arrays `(N, F)` of the
            classifier's features of the first N images of each split, and
            optionally `"data"`, a str saying which images they are.

    Example:
    >>> evaluator = Evaluator.load()  # the shipped weights and reference
    >>> images = np.load("samples.npz")["images"]
    >>> evaluator.evaluate(images)
    {'num': 1000, 'fid': ..., 'floor': ..., 'confident_rate': ..., 'accuracy': None}
    """

    def __init__(self, classifier, batch_size=500, source=None, reference=None):
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
        self.reference = None if reference is None else self._checked_reference(
            reference)

    @classmethod
    def load(cls, name_or_path="evaluator", batch_size=500):
        """Loads a classifier by shipped name, `.keras` path, preset
        directory or hub handle, with its saved reference features if it
        has them (`reference_path`)."""
        path = os.path.abspath(resolve_model_path(name_or_path))
        classifier = load_model(path, expected_type=MNISTClassifier)
        reference = None
        if os.path.isfile(reference_path(path)):
            reference = read_npz(reference_path(path), "reference features")
        return cls(classifier, batch_size=batch_size, source=path,
                   reference=reference)

    @property
    def image_shape(self):
        """The `(height, width, channels)` of the images it reads."""
        return tuple(self.classifier.image_shape)

    def check_image_shape(self, image_shape, what="The images"):
        """Raises `ValueError`, saying what to do, unless it reads images
        of `image_shape` (`what` names them in the message)."""
        if tuple(image_shape) == self.image_shape:
            return

        def text(shape):
            return "x".join(str(size) for size in shape)

        raise ValueError(
            f"{what} are {text(image_shape)} and the evaluator reads "
            f"{text(self.image_shape)} images: pass an evaluator trained on "
            "their data (`kd train evaluator --data DIR`, then `evaluator=` / "
            "`--evaluator`)."
        )

    def compute_reference(self, data=None, num_images=REFERENCE_IMAGES, name=None):
        """Computes (and keeps) the features of real images to score against.

        Args:
            data: the images the classifier was trained on, any source
                `keras_diffusion.data.load_images` reads (`None`: MNIST
                through tensorflow-datasets), split by `load_splits`; they
                are resized and converted to the classifier's image shape.
            num_images: int >= 2, the most images kept per split (the first
                ones; fewer where a split is shorter).
            name: str, how `kd evaluate` names these images (default: their
                source, such as the path given).

        Returns:
            The reference dict (`"train"`, `"test"`, `"data"`), also set as
            `self.reference`, which later calls without `data` use.
        """
        train, test = _real_splits(data, self.image_shape)
        return self.reference_from_images(
            train.images, test.images, train.source if name is None else name,
            num_images)

    def reference_from_images(self, train_images, test_images, name,
                              num_images=REFERENCE_IMAGES):
        """`compute_reference` from images in memory: uint8 `(N, H, W, C)`
        of the classifier's image shape, as `load_images` gives them."""
        num_images = int(num_images)
        if num_images < 2:
            raise ValueError(f"`num_images` must be >= 2. Got {num_images}")
        reference = {
            split: self.features(np.asarray(images[:num_images]) / np.float32(255.0))
            for split, images in (("train", train_images), ("test", test_images))
        }
        reference["data"] = str(name)
        self.reference = self._checked_reference(reference)
        return self.reference

    def save_reference(self, path):
        """Writes `self.reference` to `path` (an `.npz`, atomically), where
        `Evaluator.load` finds it (`reference_path(model_path)`)."""
        if self.reference is None:
            raise ValueError("This evaluator has no reference features; call "
                             "`compute_reference(data)` first.")
        with atomic_path(os.fspath(path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, train=self.reference["train"],
                                    test=self.reference["test"],
                                    data=np.array(self.reference["data"]))
        return path

    def _checked_reference(self, reference):
        """The reference dict, checked against the classifier's features."""
        width = int(self.classifier.feature_dim)
        checked = {}
        for split in ("train", "test"):
            features = np.asarray(reference.get(split, ()))
            if features.ndim != 2 or features.shape[1] != width or len(features) < 2:
                raise ValueError(
                    f"The reference's {split!r} features must be an array "
                    f"(N, {width}) with N >= 2, of this classifier's features. "
                    f"Got shape {features.shape}")
            checked[split] = features.astype("float32")
        data = reference.get("data")
        checked["data"] = "unknown images" if data is None else str(np.asarray(data))
        return checked

    def probabilities(self, images01):
        """Class probabilities, float32 `(N, 10)`."""
        return self._outputs(images01)["probabilities"]

    def features(self, images01):
        """Penultimate-layer features, float32 `(N, 128)`."""
        return self._outputs(images01)["features"]

    def fid(self, images01, num=None, data=None):
        """FID of `images01` against the first `num` real test images.

        Args:
            images01: images in [0, 1].
            num: int, test images in the reference (default: as many as
                `images01`).
            data: `None` (the saved reference, else MNIST through
                tensorflow-datasets) or the real images, any source
                `keras_diffusion.data.load_images` reads.
        """
        features = self.features(images01)
        num = len(features) if num is None else num
        return frechet_distance(features, self.reference_features("test", num, data))

    def floor(self, num, data=None):
        """FID of the first `num` real train images against `num` test images."""
        return frechet_distance(
            self.reference_features("train", num, data), self.reference_features("test", num, data)
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
            `confident_rate`, `accuracy` (`None` without `labels`),
            `class_accuracy`: a dict from each class present in `labels` to
            the accuracy of its images (`None` without `labels`), and
            `reference`: which real images (`reference_source`).
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
                outputs["features"], self.reference_features("test", num, data)
            ),
            "floor": self.floor(num, data),
            "confident_rate": _confident_rate(outputs["probabilities"]),
            "accuracy": accuracy,
            "class_accuracy": class_accuracy,
            "reference": self.reference_source(data),
        }

    def reference_source(self, data=None):
        """Which real images the FID compares with, given `data`."""
        if data is not None:
            return os.fspath(data)
        if self.reference is not None:
            return self.reference["data"]
        return "tfds:mnist"

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

    def reference_features(self, split, num, data=None):
        """Features of the first `num` real images of `split` (`"train"` or
        `"test"`): the saved reference without `data`, else computed from
        `data` (and cached in this process)."""
        num = int(num)
        if num < 2:
            raise ValueError(f"FID needs at least 2 images. Got {num}")
        if split not in ("train", "test"):
            raise ValueError(f"`split` must be 'train' or 'test'. Got {split!r}")
        if data is None and self.reference is not None:
            saved = self.reference[split]
            if num > len(saved):
                raise ValueError(
                    f"The evaluator's saved reference holds the features of "
                    f"{len(saved)} {split} images ({self.reference['data']}); "
                    f"score at most {len(saved)} images, or pass the data to "
                    "compute a longer reference from (`data`, `--data`)."
                )
            return saved[:num]
        key = (self.source, split, None if data is None else os.path.abspath(data))
        cached = _REFERENCE_FEATURES.get(key)
        if cached is None or len(cached) < num:
            splits = _real_splits(data, self.image_shape)
            images = splits[("train", "test").index(split)].images
            if num > len(images):
                raise ValueError(
                    f"Cannot compare {num} images with the {split} split of "
                    f"{splits[0].source}: it holds {len(images)}. Use at most "
                    f"{len(images)} images."
                )
            cached = self.features(images[:num] / np.float32(255.0))
            _REFERENCE_FEATURES[key] = cached
        return cached[:num]


def _real_splits(data, image_shape):
    """`load_splits(data)` at `image_shape` (the latest read is kept)."""
    key = (None if data is None else os.path.abspath(data), tuple(image_shape))
    if key not in _REAL_SPLITS:
        _REAL_SPLITS.clear()
        _REAL_SPLITS[key] = load_splits(data, image_shape[:2], image_shape[2])
    return _REAL_SPLITS[key]


def as_evaluator(evaluator=None):
    """An `Evaluator` from what a user passes: `None` (the shipped MNIST
    evaluator), an `Evaluator`, an `MNISTClassifier`, or a shipped name,
    `.keras` path, preset directory or hub handle of one."""
    if evaluator is None:
        return Evaluator.load()
    if isinstance(evaluator, Evaluator):
        return evaluator
    if isinstance(evaluator, MNISTClassifier):
        return Evaluator(evaluator)
    if isinstance(evaluator, (str, os.PathLike)):
        return Evaluator.load(evaluator)
    raise ValueError(
        "`evaluator` must be an Evaluator, an MNISTClassifier, or a shipped "
        f"name or path of one. Got {type(evaluator).__name__}"
    )


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
