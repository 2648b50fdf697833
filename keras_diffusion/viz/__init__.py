"""Visualization: image grids, sampling animations and plots."""

from keras_diffusion.viz.animation import save_animation
from keras_diffusion.viz.figure import save_figure
from keras_diffusion.viz.grid import make_grid
from keras_diffusion.viz.grid import save_image_grid

__all__ = ["make_grid", "save_animation", "save_figure", "save_image_grid"]
