"""Samplers: each a small `step()` that needs only a callable network and
returns a `SamplerOutput` (the next samples, the estimate of the final
samples, the network's output)."""

from keras_diffusion.samplers.ddim_sampler import DDIMSampler
from keras_diffusion.samplers.ddpm_sampler import DDPMSampler
from keras_diffusion.samplers.dpm_solver_sampler import DPMSolverSampler
from keras_diffusion.samplers.euler_sampler import EulerSampler
from keras_diffusion.samplers.heun_sampler import HeunSampler
from keras_diffusion.samplers.sample_loop import make_step_function
from keras_diffusion.samplers.sample_loop import run_sampler
from keras_diffusion.samplers.sampler_output import SamplerOutput

__all__ = ["DDIMSampler", "DDPMSampler", "DPMSolverSampler", "EulerSampler",
           "HeunSampler", "SamplerOutput", "make_step_function", "run_sampler"]
