"""Pixel value ranges: which one an array uses, and scaling it to uint8 or
to the models' [-1, 1].

Integer arrays (uint8 or any other integer type) hold 0-255 pixel values.
Float arrays are read by their values:

- all in [0, 1]: [0, 1] images (as `x / 255` gives);
- all in [-1, 1], some below 0: [-1, 1] images (the models' range);
- all in [0, 255], the largest above 2: 0-255 pixel values stored as floats.

Anything else is refused with a `DataError` that names the data and the
range found: values below -1 or above 255, negative values together with
values above 1 (standardized data), NaN or Inf, a float maximum between 1
and 2 (ambiguous: [0, 1] images that overshoot, or nearly black 0-255
images) and integers that are only 0 and 1 (binary images: scale them to
0-255 first, or they would be black).
"""

import numpy as np

from keras_diffusion.data.errors import DataError

# A float maximum above this reads as 0-255; in (1, this] it is ambiguous.
_SMALLEST_0_255_MAX = 2.0
_ACCEPTED = ("uint8 or integers in 0-255, or floats in [0, 1], [-1, 1] or "
             "0-255")


def value_range(images, origin="the images"):
    """The value range of an image array: `"0-255"`, `"[0, 1]"` or `"[-1, 1]"`.

    Args:
        images: array of pixel values, any shape.
        origin: str, what the array is and where it came from, for the
            error message (e.g. `"x_train in 'data.npz'"`).

    Returns:
        `"0-255"`, `"[0, 1]"` or `"[-1, 1]"` (see the module docstring for
        the rules).

    Raises:
        DataError: the array is not numbers, is empty, holds NaN or Inf, or
            its range is out of bounds or ambiguous.

    Example:

    >>> value_range(np.array([0.0, 0.5, 1.0]))
    '[0, 1]'
    """
    images = np.asarray(images)
    if images.dtype.kind not in "uif":
        raise DataError(f"{origin} are of dtype {images.dtype}; expected "
                        f"image pixels: {_ACCEPTED}.")
    if images.size == 0:
        raise DataError(f"{origin} are empty (shape {images.shape}).")
    if images.dtype == np.uint8:
        low, high = 0, int(images.max())
    else:
        if images.dtype.kind == "f" and not np.all(np.isfinite(images)):
            raise DataError(f"{origin} hold NaN or Inf values; expected "
                            f"finite pixels: {_ACCEPTED}.")
        low, high = images.min(), images.max()
    found = f"{origin} are {images.dtype} with values from {low:g} to {high:g}"
    if images.dtype.kind in "ui":
        if low < 0 or high > 255:
            raise DataError(f"{found}; integer pixels must lie in 0-255 "
                            f"(expected {_ACCEPTED}).")
        if high == 1:
            raise DataError(
                f"{found}: only 0 and 1, which as 0-255 pixels would be "
                "black. If these are binary images, multiply them by 255 "
                "(or store them as floats in [0, 1]).")
        return "0-255"
    if low >= 0 and high <= 1:
        return "[0, 1]"
    if low >= -1 and high <= 1:
        return "[-1, 1]"
    if low >= 0 and _SMALLEST_0_255_MAX < high <= 255:
        return "0-255"
    if low >= 0 and high <= _SMALLEST_0_255_MAX:
        raise DataError(
            f"{found}: ambiguous, slightly above [0, 1] or very dark 0-255 "
            "pixels. Clip [0, 1] images to [0, 1], or store 0-255 pixels as "
            "uint8.")
    raise DataError(f"{found}: not a pixel range; expected {_ACCEPTED}. "
                    "Rescale the images to [0, 1] (for example "
                    "(x - x.min()) / (x.max() - x.min())) or to uint8.")


def to_uint8(images, origin="the images"):
    """Scales image pixels of any accepted range to uint8 0-255.

    Args:
        images: array of pixel values, any shape (see `value_range` for the
            ranges accepted).
        origin: str, what the array is and where it came from, for the
            error message.

    Returns:
        `(uint8 array of the same shape, description)`, the description
        being the dtype and range as read, e.g. `"float32 [0, 1]"`.

    Raises:
        DataError: as `value_range`.

    Example:

    >>> to_uint8(np.array([0.0, 1.0]))[0].tolist()
    [0, 255]
    """
    images = np.asarray(images)
    scale = value_range(images, origin)
    description = f"{images.dtype} {scale}"
    if images.dtype == np.uint8:
        return images, description
    pixels = np.asarray(images, "float64")
    if scale == "[0, 1]":
        pixels = pixels * 255.0
    elif scale == "[-1, 1]":
        pixels = (pixels + 1.0) * 127.5
    return np.clip(np.rint(pixels), 0, 255).astype("uint8"), description


def to_model_range(images):
    """Images -> float32 `(N, H, W, C)` in [-1, 1], the models' input range.

    Args:
        images: `(N, H, W)` or `(N, H, W, C)` pixels of any size and channel
            count: uint8 (as `load_images` and `load_mnist` return them), or
            any range `value_range` accepts (0-255 integers or floats,
            [0, 1] or [-1, 1] floats); a `(N, H, W)` array gets one channel.

    Returns:
        float32 array `(N, H, W, C)` with 0 (black) at -1 and 255 (or 1.0)
        at 1.

    Raises:
        DataError: the values are not in an accepted range (see
            `value_range`).
        ValueError: the array is not 3-D or 4-D.

    Example:

    >>> to_model_range(np.array([[[0, 255]]], "uint8")).ravel().tolist()
    [-1.0, 1.0]
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (N, H, W) or (N, H, W, C); "
                         f"got shape {images.shape}.")
    scale = "0-255" if images.dtype == np.uint8 else value_range(images)
    images = images.astype("float32")
    if scale == "0-255":
        return images / 127.5 - 1.0
    if scale == "[0, 1]":
        return images * 2.0 - 1.0
    return images
