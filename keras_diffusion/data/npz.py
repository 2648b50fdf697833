"""Images (and labels) from a NumPy `.npz` file."""

import zipfile

import numpy as np

from keras_diffusion.data.errors import DataError

_LABEL_KEYS = ("y_train", "y_test", "labels")
NPZ_LAYOUTS = (
    "an .npz with x_train, y_train, x_test, y_test (as MNIST's), with images "
    "and optional labels (as `kd sample --out FILE.npz` writes), or with a "
    "single array of images")


def read_npz(filename, split="train"):
    """Reads the images and labels of one split of an `.npz` file.

    Accepted layouts, in this order:

    - `x_train`, `x_test` with optional `y_train`, `y_test` (the MNIST
      layout); `split` picks which pair;
    - `images`, with optional `labels`; `split` is ignored;
    - a single array of images, of any name (`np.savez(f, x)` names it
      `arr_0`); unlabelled, and `split` is ignored.

    The arrays are returned as stored; `load_images` checks their shape,
    values and labels.

    Args:
        filename: str, the `.npz` file.
        split: str, `"train"` or `"test"` for the MNIST layout.

    Returns:
        `(images, labels, images_name, labels_name)`: the arrays (`labels`
        may be `None`) and the keys they were read from.

    Raises:
        DataError: the file is not an `.npz`, cannot be read, or holds no
            accepted layout.

    Example:

    >>> images, labels, _, _ = read_npz("mnist.npz", "test")
    """
    if not zipfile.is_zipfile(filename):
        raise DataError(
            f"{filename!r} is neither a directory nor an .npz file. Pass a "
            "folder of images, a directory with the four MNIST IDX files, "
            f"or {NPZ_LAYOUTS}.")
    try:
        with np.load(filename, allow_pickle=False) as data:
            keys = list(data.keys())
            if "x_train" in keys or "x_test" in keys:
                if split not in ("train", "test"):
                    raise DataError(
                        f"Unknown split {split!r} for {filename!r}; it holds "
                        "x_train and x_test: choose 'train' or 'test'.")
                image_key, label_key = f"x_{split}", f"y_{split}"
            elif "images" in keys:
                image_key, label_key = "images", "labels"
            elif len(keys) == 1 and keys[0] not in _LABEL_KEYS:
                image_key, label_key = keys[0], None
            else:
                raise DataError(
                    f"{filename!r} holds the arrays {keys}; expected "
                    f"{NPZ_LAYOUTS}.")
            if image_key not in keys:
                raise DataError(
                    f"{filename!r} lacks {image_key}; an .npz in the MNIST "
                    "layout holds x_train, y_train, x_test and y_test.")
            images = data[image_key]
            labels = data[label_key] if label_key in keys else None
    except DataError:
        raise
    except Exception as error:  # zipfile, zlib, NumPy's format errors
        raise DataError(
            f"Could not read {filename!r} as an .npz file "
            f"({type(error).__name__}: {error}).") from None
    return images, labels, image_key, label_key if labels is not None else None
