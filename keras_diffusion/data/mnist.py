"""MNIST: the IDX file format, and `load_mnist`, MNIST from any source
`load_images` reads (tensorflow-datasets, IDX files, an `.npz`)."""

import gzip
import math
import os
import struct
import zlib

import numpy as np

# Kept importable from here, where they were first defined.
from keras_diffusion.data.errors import DataError
from keras_diffusion.data.ranges import to_model_range  # noqa: F401

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
_CHUNK = 1 << 20  # bytes read at a time by `read_idx`


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
    from keras_diffusion.data.loader import load_images

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


def has_idx_files(directory):
    """Whether `directory` holds any MNIST IDX file (so is read as one).

    Args:
        directory: str.

    Returns:
        bool.

    Example:

    >>> has_idx_files("data/mnist")
    True
    """
    return any(os.path.isfile(os.path.join(directory, name))
               for stems in IDX_FILES.values() for stem in stems
               for name in _names(stem))


def read_idx_dir(directory, split="train"):
    """Reads one split of an MNIST IDX directory, as stored.

    Args:
        directory: str, holding the four IDX files (`.gz` or not).
        split: `"train"` or `"test"`.

    Returns:
        `(images, labels, images_file, labels_file)`.

    Raises:
        DataError: a file is missing or is not a valid IDX file.

    Example:

    >>> images, labels, _, _ = read_idx_dir("data/mnist", "test")
    """
    if split not in IDX_FILES:
        raise DataError(f"Unknown split {split!r} for the MNIST directory "
                        f"{directory!r}; choose 'train' or 'test'.")
    image_stem, label_stem = IDX_FILES[split]
    image_file = _find(directory, image_stem)
    label_file = _find(directory, label_stem)
    return read_idx(image_file), read_idx(label_file), image_file, label_file


def _names(stem):
    dotted = stem.replace("-idx", ".idx")
    return (stem, stem + ".gz", dotted, dotted + ".gz")


def _find(directory, stem):
    for name in _names(stem):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise DataError(
        f"{directory!r} has no {stem}(.gz). An MNIST directory holds "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz."
    )


def read_idx(filename):
    """Reads an IDX file (optionally gzipped) into a NumPy array.

    Reads the header first and then at most the payload it declares (plus
    one byte, to detect padding), in chunks: a header that declares a huge
    shape, or a small `.gz` that inflates to gigabytes, cannot make it
    allocate more memory than the file really holds.
    """
    opener = gzip.open if filename.endswith(".gz") else open
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}
    try:
        with opener(filename, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise DataError(f"{filename!r} is too short to be an IDX file.")
            zero, dtype_code, ndim = struct.unpack(">HBB", magic)
            if zero != 0 or dtype_code not in dtypes or ndim == 0:
                raise DataError(
                    f"{filename!r} is not an IDX file (bad magic number)."
                )
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{filename!r} is truncated (incomplete header).")
            shape = struct.unpack(f">{ndim}I", dims)
            dtype = np.dtype(dtypes[dtype_code])
            # Python ints: NumPy's int64 product can overflow and wrap.
            expected = math.prod(shape) * dtype.itemsize
            payload = bytearray()
            while len(payload) <= expected:
                chunk = f.read(min(_CHUNK, expected + 1 - len(payload)))
                if not chunk:
                    break
                payload += chunk
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"Could not read {filename!r}: {error}") from None
    if len(payload) != expected:
        raise DataError(
            f"{filename!r} is truncated or padded: header says shape {shape} "
            f"({expected} bytes), file has "
            f"{'extra bytes' if len(payload) > expected else len(payload)}."
        )
    return np.frombuffer(payload, dtype).reshape(shape)
