"""Image grids saved as PNG."""

import numpy as np

from keras_diffusion.utils.io import atomic_path


def make_grid(images, num_columns=None, padding=2, scale=2):
    """Tiles `(N, H, W, 1)` images in [0, 1] into one `(rows*H, cols*W)` array."""
    images = np.asarray(images, "float32")
    if images.ndim == 4:
        images = images[..., 0]
    count, height, width = images.shape
    num_columns = num_columns or int(np.ceil(np.sqrt(count)))
    num_rows = int(np.ceil(count / num_columns))
    grid = np.ones(
        (num_rows * (height + padding) + padding,
         num_columns * (width + padding) + padding),
        "float32",
    )
    for index, image in enumerate(images):
        row, column = divmod(index, num_columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[top : top + height, left : left + width] = image
    return np.kron(grid, np.ones((scale, scale), "float32"))


def save_image_grid(images, path, num_columns=None, scale=2):
    """Writes images in [0, 1] as a grayscale PNG grid (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = make_grid(images, num_columns=num_columns, scale=scale)
    with atomic_path(path) as tmp:
        plt.imsave(tmp, np.clip(grid, 0, 1), cmap="gray", vmin=0.0, vmax=1.0)
    return path
