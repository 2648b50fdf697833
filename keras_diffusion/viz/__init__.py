"""Visualization: image grids."""

from keras_diffusion.viz.grid import make_grid
from keras_diffusion.viz.grid import save_image_grid

__all__ = ["make_grid", "save_image_grid"]
