"""Networks: the denoising UNet, the VAE's encoder and decoder, classifiers."""

from keras_diffusion.networks.mnist_classifier import MNISTClassifier
from keras_diffusion.networks.time_conditioned_classifier import TimeConditionedClassifier
from keras_diffusion.networks.unet import UNet
from keras_diffusion.networks.vae_decoder import VAEDecoder
from keras_diffusion.networks.vae_encoder import VAEEncoder

__all__ = ["MNISTClassifier", "TimeConditionedClassifier", "UNet", "VAEDecoder",
           "VAEEncoder"]
