"""MNIST: `load_mnist`, MNIST from any source `load_images` reads
(tensorflow-datasets, IDX files, an `.npz`), checked to be 28x28 digits."""

from keras_diffusion.data.errors import DataError
from keras_diffusion.data.idx import IDX_FILES
from keras_diffusion.data.loader import load_images

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


def load_mnist(path=None, split="train"):
    """Loads MNIST images (uint8, `(N, 28, 28)`) and labels (int64, `(N,)`).

    A thin wrapper over `load_images` that checks the data is MNIST-shaped:
    28x28 grayscale images with labels 0-9.

    Args:
        path: `None` to use tensorflow-datasets (needs internet the first
            time; offline it fails at once, naming `--data`); a directory
            holding the four standard IDX files (`.gz` or not); an `.npz`
            with `x_train, y_train, x_test, y_test` (or `images` and
            `labels`); or any other source `load_images` reads, such as
            `"tfds:fashion_mnist"`.
        split: `"train"` or `"test"`.

    Returns:
        `(images, labels)`: uint8 `(N, 28, 28)` and int64 `(N,)` in 0-9.
        Float images in [0, 1] or [-1, 1] are scaled to 0-255 (see
        `keras_diffusion.data.ranges`).

    Raises:
        DataError: with a message naming the problem and the fix.

    Example:

    >>> images, labels = load_mnist("data/mnist", "test")
    >>> images.shape, labels[:3].tolist()
    ((10000, 28, 28), [7, 2, 1])
    """
    if split not in IDX_FILES:
        raise DataError(f"Unknown split {split!r}; choose 'train' or 'test'.")
    return check_mnist(load_images(path, split), split)


def check_mnist(data, split="train"):
    """`(images, labels)` of an `ImageData` that must be MNIST-shaped.

    Args:
        data: an `ImageData` from `load_images`.
        split: the split's name, for the messages.

    Returns:
        uint8 `(N, 28, 28)` images and int64 `(N,)` labels in 0-9.

    Raises:
        DataError: the images are not 28x28 grayscale or have no labels
            in 0-9.
    """
    shape = data.images.shape
    if shape[1:] != IMAGE_SHAPE + (1,):
        shown = shape[:3] if shape[3] == 1 else shape
        raise DataError(
            f"MNIST {split} images from {data.source!r} have shape {shown}; "
            "expected (N, 28, 28) or (N, 28, 28, 1)."
        )
    if data.labels is None:
        raise DataError(
            f"MNIST {split} images from {data.source!r} have no labels; "
            "give them with the images (y_train / y_test, or labels, in an "
            ".npz)."
        )
    if data.labels.max() >= NUM_CLASSES:
        raise DataError(
            f"MNIST {split} labels from {data.source!r} must be whole numbers "
            f"in 0-{NUM_CLASSES - 1}; got dtype int64 with values from "
            f"{data.labels.min()} to {data.labels.max()}."
        )
    return data.images[..., 0], data.labels
