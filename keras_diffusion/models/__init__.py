"""Trainable models: each trains with plain `model.fit`."""

from keras_diffusion.models.ddpm import DDPM
from keras_diffusion.models.generative_model import GenerativeModel
from keras_diffusion.models.latent_diffusion import LatentDiffusion
from keras_diffusion.models.latent_rectified_flow import LatentRectifiedFlow
from keras_diffusion.models.noisy_classifier import NoisyClassifier
from keras_diffusion.models.rectified_flow import RectifiedFlow
from keras_diffusion.models.trainable_model import TrainableModel
from keras_diffusion.models.vae import VAE

# The models that `generate` images (what `kd sample` and `kd evaluate` load).
SAMPLING_MODELS = (DDPM, RectifiedFlow)

__all__ = ["DDPM", "GenerativeModel", "LatentDiffusion", "LatentRectifiedFlow",
           "NoisyClassifier", "RectifiedFlow", "SAMPLING_MODELS", "TrainableModel",
           "VAE"]
