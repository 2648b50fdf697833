"""Networks: the denoising UNet (and, in later modules, VAE and classifiers)."""

from keras_diffusion.networks.unet import UNet

__all__ = ["UNet"]
