"""Noise schedules: timestep -> (signal rate, noise rate)."""

from keras_diffusion.schedules.cosine_schedule import CosineSchedule
from keras_diffusion.schedules.linear_beta_schedule import LinearBetaSchedule
from keras_diffusion.schedules.noise_schedule import NoiseSchedule
from keras_diffusion.schedules.noise_schedule import as_schedule

SCHEDULES = {"linear": LinearBetaSchedule, "cosine": CosineSchedule}

__all__ = [
    "CosineSchedule",
    "LinearBetaSchedule",
    "NoiseSchedule",
    "SCHEDULES",
    "as_schedule",
]
