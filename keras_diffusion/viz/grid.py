"""Image grids saved as PNG."""

import numpy as np

from keras_diffusion.utils.io import atomic_path


def make_grid(images, num_columns=None, padding=2, scale=2):
    """Tiles `(N, H, W, C)` images in [0, 1] into one image.

    Grayscale images (C = 1, or `(N, H, W)`) give a `(rows*H, cols*W)`
    array, RGB images (C = 3) a `(rows*H, cols*W, 3)` one; white padding
    separates them, and each pixel becomes `scale` x `scale` pixels.
    """
    images = np.asarray(images, "float32")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"`images` must be (N, H, W), (N, H, W, 1) or "
                         f"(N, H, W, 3). Got {images.shape}")
    count, height, width, channels = images.shape
    num_columns = num_columns or int(np.ceil(np.sqrt(count)))
    num_rows = int(np.ceil(count / num_columns))
    grid = np.ones(
        (num_rows * (height + padding) + padding,
         num_columns * (width + padding) + padding, channels),
        "float32",
    )
    for index, image in enumerate(images):
        row, column = divmod(index, num_columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[top : top + height, left : left + width] = image
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid[..., 0] if channels == 1 else grid


def save_image_grid(images, path, num_columns=None, scale=2):
    """Writes images in [0, 1] as a PNG grid, grayscale or RGB (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.clip(make_grid(images, num_columns=num_columns, scale=scale), 0, 1)
    with atomic_path(path) as tmp:
        if grid.ndim == 2:
            plt.imsave(tmp, grid, cmap="gray", vmin=0.0, vmax=1.0)
        else:
            plt.imsave(tmp, grid)
    return path
