"""The IDX file format of MNIST (and Fashion-MNIST): `read_idx` reads one
file, `read_idx_dir` one split of a directory of the four files."""

import gzip
import math
import os
import struct
import zlib

import numpy as np

from keras_diffusion.data.errors import DataError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CHUNK = 1 << 20  # bytes read at a time by `read_idx`


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
