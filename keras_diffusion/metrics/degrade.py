"""Degraded real images, to see a metric respond (FID grows with blur)."""

import numpy as np


def gaussian_blur(images, sigma):
    """Gaussian blur of `(N, H, W, C)` images, one separable matrix per axis.

    Each row of the blur matrix sums to 1, so flat regions keep their value
    (edges are renormalized rather than padded).

    Args:
        images: float array `(N, H, W, C)`.
        sigma: float > 0, the blur's standard deviation in pixels.

    Returns:
        float32 array shaped like `images`.

    Example:
    >>> blurred = gaussian_blur(test_images01, sigma=1.0)
    """
    images = np.asarray(images, "float32")

    def matrix(size):
        offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
        kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
        return kernel / kernel.sum(axis=1, keepdims=True)

    rows, columns = matrix(images.shape[1]), matrix(images.shape[2])
    blurred = np.einsum("ij,njkc,lk->nilc", rows, images, columns)
    return blurred.astype("float32")
