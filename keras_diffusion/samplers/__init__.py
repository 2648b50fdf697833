"""Samplers: each a small `step()` that needs only a callable network."""

from keras_diffusion.samplers.ddim_sampler import DDIMSampler
from keras_diffusion.samplers.ddpm_sampler import DDPMSampler
from keras_diffusion.samplers.dpm_solver_sampler import DPMSolverSampler
from keras_diffusion.samplers.euler_sampler import EulerSampler
from keras_diffusion.samplers.heun_sampler import HeunSampler
from keras_diffusion.samplers.sample_loop import make_step_function
from keras_diffusion.samplers.sample_loop import run_sampler

__all__ = ["DDIMSampler", "DDPMSampler", "DPMSolverSampler", "EulerSampler",
           "HeunSampler", "make_step_function", "run_sampler"]
