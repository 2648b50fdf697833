"""MNIST: tensorflow-datasets online, or a local IDX directory / `.npz` offline."""

import gzip
import math
import os
import struct
import zipfile
import zlib

import numpy as np

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
_CHUNK = 1 << 20  # bytes read at a time by `read_idx`


class DataError(ValueError):
    """The data could not be loaded; the message says why and what to do."""


def load_mnist(path=None, split="train"):
    """Loads MNIST images (uint8, `(N, 28, 28)`) and labels (int64, `(N,)`).

    Args:
        path: `None` to use `tensorflow_datasets` (needs internet the first
            time); a directory holding the four standard IDX files (`.gz` or
            not); or an `.npz` file with `x_train, y_train, x_test, y_test`.
        split: `"train"` or `"test"`.

    Raises:
        DataError: with a message naming the problem and the fix.
    """
    if split not in IDX_FILES:
        raise DataError(f"Unknown split {split!r}; choose 'train' or 'test'.")
    if path is None:
        images, labels = _load_tfds(split)
    else:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise DataError(
                f"Data path {path!r} does not exist. Pass a directory with the "
                "four MNIST IDX files or an .npz with x_train, y_train, x_test, "
                "y_test."
            )
        if os.path.isdir(path):
            images, labels = _load_idx_dir(path, split)
        else:
            images, labels = _load_npz(path, split)
    return _check(images, labels, path, split)


def to_model_range(images):
    """uint8 `(N, 28, 28)` or `(N, 28, 28, 1)` -> float32 `(N, 28, 28, 1)` in [-1, 1]."""
    images = np.asarray(images, dtype="float32")
    if images.ndim == 3:
        images = images[..., None]
    return images / 127.5 - 1.0


def _load_tfds(split):
    try:
        import tensorflow_datasets as tfds

        data = tfds.as_numpy(tfds.load("mnist", split=split, batch_size=-1))
    except Exception as error:  # tfds raises many kinds when offline
        raise DataError(
            "Could not load MNIST through tensorflow-datasets "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
            "Offline, pass --data PATH (a directory with the four MNIST IDX "
            "files, or an .npz with x_train, y_train, x_test, y_test)."
        ) from None
    return data["image"][..., 0], data["label"]


def _find(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
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


def _load_idx_dir(directory, split):
    image_stem, label_stem = IDX_FILES[split]
    images = read_idx(_find(directory, image_stem))
    labels = read_idx(_find(directory, label_stem))
    return images, labels


def _load_npz(filename, split):
    key = "train" if split == "train" else "test"
    if not zipfile.is_zipfile(filename):
        raise DataError(
            f"{filename!r} is neither a directory nor an .npz file. Pass a "
            "directory with the four MNIST IDX files or an .npz with x_train, "
            "y_train, x_test, y_test."
        )
    try:
        with np.load(filename, allow_pickle=False) as data:
            if f"x_{key}" not in data or f"y_{key}" not in data:
                raise DataError(
                    f"{filename!r} lacks x_{key} / y_{key}; an MNIST .npz holds "
                    "x_train, y_train, x_test and y_test."
                )
            return data[f"x_{key}"], data[f"y_{key}"]
    except DataError:
        raise
    except Exception as error:
        raise DataError(
            f"Could not read {filename!r} as an .npz file "
            f"({type(error).__name__}: {error})."
        ) from None


def _check(images, labels, path, split):
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"MNIST {split} images from {path!r} have shape {images.shape}; "
            "expected (N, 28, 28) or (N, 28, 28, 1)."
        )
    if len(images) == 0:
        raise DataError(f"MNIST {split} split from {path!r} is empty.")
    if labels.shape != (len(images),):
        raise DataError(
            f"MNIST {split} labels from {path!r} have shape {labels.shape}; "
            f"expected ({len(images)},), one per image."
        )
    if images.dtype != np.uint8:
        if images.dtype.kind not in "uif" or not (
            np.all(np.isfinite(images)) and images.min() >= 0
            and images.max() <= 255
        ):
            raise DataError(
                f"MNIST {split} images from {path!r} must be numbers in 0-255 "
                f"(uint8 pixels); got dtype {images.dtype}"
                + (f" with values from {images.min()} to {images.max()}."
                   if images.dtype.kind in "uif" else ".")
            )
        images = images.astype("uint8")
    if labels.dtype.kind not in "uif" or not (
        np.all(labels == np.round(labels)) and labels.min() >= 0
        and labels.max() < NUM_CLASSES
    ):
        raise DataError(
            f"MNIST {split} labels from {path!r} must be whole numbers in "
            f"0-{NUM_CLASSES - 1}; got dtype {labels.dtype}"
            + (f" with values from {labels.min()} to {labels.max()}."
               if labels.dtype.kind in "uif" else ".")
        )
    return images, labels.astype("int64")
