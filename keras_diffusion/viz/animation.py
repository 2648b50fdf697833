"""Animated GIFs of sampling trajectories, one image grid per frame."""

import os

import numpy as np

from keras_diffusion.utils.io import atomic_path
from keras_diffusion.viz.grid import make_grid

FRAME_MS = 100  # each step's frame
FINAL_MS = 2000  # the final grid, held longer
GRAY_LEVELS = 32  # halves the file against 256, with no visible banding on digits


def save_animation(frames, path, final=None, num_columns=None, scale=2,
                   frame_ms=FRAME_MS, final_ms=FINAL_MS, gray_levels=GRAY_LEVELS):
    """Writes a GIF that shows images forming, one grid per frame (atomically).

    Each frame tiles one batch of images (as `make_grid` does) and has a thin
    bar along its bottom edge that fills up as the frames go by; the last
    frame (`final`, if given, else the last of `frames`) is held for
    `final_ms`. The bar also keeps consecutive frames distinct, so the GIF
    has exactly one frame per grid (GIF writers merge identical frames).

    Args:
        frames: float array `(num_frames, N, H, W, 1)` (or a list of
            `(N, H, W, 1)` arrays) of images in [0, 1], such as the
            trajectory from `model.generate(..., return_trajectory=True)`.
        path: the output path; it must end in `.gif`.
        final: optional `(N, H, W, 1)` images in [0, 1] shown last (the
            sampler's output).
        num_columns: int, images per grid row (default: a square grid).
        scale: int, pixels per image pixel.
        frame_ms: int, how long each frame shows, in milliseconds.
        final_ms: int, how long the last frame shows.
        gray_levels: int in 2 to 256, the shades of gray the pixels are
            rounded to (fewer give a smaller file).

    Returns:
        `path`.

    Example:
    >>> images, frames = model.generate(16, return_trajectory=True,
    ...                                 trajectory_frames=49)
    >>> save_animation(frames, "denoising.gif", final=images)
    """
    from PIL import Image

    check_animation_path(path)
    grids = [np.asarray(batch, "float32") for batch in frames]
    if final is not None:
        grids.append(np.asarray(final, "float32"))
    if not grids:
        raise ValueError("`frames` is empty: an animation needs at least one frame.")
    if int(frame_ms) < 1 or int(final_ms) < 1:
        raise ValueError(
            f"`frame_ms` and `final_ms` must be >= 1. Got {frame_ms}, {final_ms}"
        )
    if not 2 <= int(gray_levels) <= 256:
        raise ValueError(f"`gray_levels` must be in 2 to 256. Got {gray_levels}")
    top = int(gray_levels) - 1
    images = []
    for index, batch in enumerate(grids):
        grid = make_grid(batch, num_columns=num_columns, scale=scale)
        grid = _with_progress_bar(grid, (index + 1) / len(grids), scale)
        shades = np.round(np.clip(grid, 0.0, 1.0) * top) / top
        pixels = np.round(shades * 255).astype("uint8")
        # 2-D uint8: mode "L"; RGB grids are quantized to a GIF palette.
        images.append(Image.fromarray(pixels))
    durations = [int(frame_ms)] * (len(images) - 1) + [int(final_ms)]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True,
                       append_images=images[1:], duration=durations, loop=0)
    return path


def check_animation_path(path):
    """Raises `ValueError` unless `path` ends in `.gif`."""
    if os.path.splitext(os.fspath(path))[1].lower() != ".gif":
        raise ValueError(f"Animation {os.fspath(path)!r} must end in .gif.")


def _with_progress_bar(grid, fraction, scale):
    """`grid` with a strip below it, dark up to `fraction` of its width."""
    height = 2 * scale
    strip = np.ones((height + scale,) + grid.shape[1:], "float32")
    strip[scale:, : int(round(fraction * grid.shape[1]))] = 0.35
    return np.concatenate([grid, strip], axis=0)
