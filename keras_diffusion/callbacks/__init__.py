"""Keras callbacks for training diffusion and flow models."""

from keras_diffusion.callbacks.fid_callback import FIDCallback

__all__ = ["FIDCallback"]
