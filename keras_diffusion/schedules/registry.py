"""The schedules by name, and `as_schedule`, which turns a name, a config
or an instance into a `NoiseSchedule`."""

import keras

from keras_diffusion.schedules.cosine_schedule import CosineSchedule
from keras_diffusion.schedules.linear_beta_schedule import LinearBetaSchedule
from keras_diffusion.schedules.noise_schedule import NoiseSchedule

SCHEDULES = {"linear": LinearBetaSchedule, "cosine": CosineSchedule}


def as_schedule(schedule):
    """Returns a `NoiseSchedule` from an instance, a name or a config dict."""
    if isinstance(schedule, NoiseSchedule):
        return schedule
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(
                f"Unknown schedule {schedule!r}; choose one of {sorted(SCHEDULES)}."
            )
        return SCHEDULES[schedule]()
    return keras.saving.deserialize_keras_object(schedule)
