"""Noise schedules: timestep -> (signal rate, noise rate)."""

from keras_diffusion.schedules.cosine_schedule import CosineSchedule
from keras_diffusion.schedules.linear_beta_schedule import LinearBetaSchedule
from keras_diffusion.schedules.noise_schedule import NoiseSchedule
from keras_diffusion.schedules.registry import SCHEDULES
from keras_diffusion.schedules.registry import as_schedule

__all__ = [
    "CosineSchedule",
    "LinearBetaSchedule",
    "NoiseSchedule",
    "SCHEDULES",
    "as_schedule",
]
