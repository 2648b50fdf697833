"""Trainable models: each trains with plain `model.fit`."""

from keras_diffusion.models.ddpm import DDPM

__all__ = ["DDPM"]
