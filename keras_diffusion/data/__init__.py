"""Data: MNIST loaders and input pipelines."""

from keras_diffusion.data.mnist import DataError
from keras_diffusion.data.mnist import load_mnist
from keras_diffusion.data.mnist import read_idx
from keras_diffusion.data.mnist import to_model_range
from keras_diffusion.data.pipeline import make_dataset

__all__ = ["DataError", "load_mnist", "make_dataset", "read_idx", "to_model_range"]
