"""Data: image loaders (folders, .npz, MNIST, tensorflow-datasets) and input pipelines."""

from keras_diffusion.data.errors import DataError
from keras_diffusion.data.loader import ImageData
from keras_diffusion.data.loader import describe_data
from keras_diffusion.data.loader import load_images
from keras_diffusion.data.idx import read_idx
from keras_diffusion.data.mnist import check_mnist
from keras_diffusion.data.mnist import load_mnist
from keras_diffusion.data.pipeline import make_dataset
from keras_diffusion.data.ranges import to_model_range
from keras_diffusion.data.splits import load_splits

__all__ = ["DataError", "ImageData", "check_mnist", "describe_data", "load_images",
           "load_mnist", "load_splits", "make_dataset", "read_idx", "to_model_range"]
