"""Visualization: image grids and sampling animations."""

from keras_diffusion.viz.animation import save_animation
from keras_diffusion.viz.grid import make_grid
from keras_diffusion.viz.grid import save_image_grid

__all__ = ["make_grid", "save_animation", "save_image_grid"]
