"""Trainable models: each trains with plain `model.fit`."""

from keras_diffusion.models.ddpm import DDPM
from keras_diffusion.models.latent_diffusion import LatentDiffusion
from keras_diffusion.models.vae import VAE

__all__ = ["DDPM", "LatentDiffusion", "VAE"]
