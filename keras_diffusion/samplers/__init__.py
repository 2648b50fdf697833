"""Samplers: each a small `step()` that needs only a callable network."""

from keras_diffusion.samplers.ddim_sampler import DDIMSampler
from keras_diffusion.samplers.ddpm_sampler import DDPMSampler
from keras_diffusion.samplers.sample_loop import make_step_function
from keras_diffusion.samplers.sample_loop import run_sampler

__all__ = ["DDIMSampler", "DDPMSampler", "make_step_function", "run_sampler"]
