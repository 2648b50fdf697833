"""keras_diffusion: diffusion and flow models on small images, in Keras 3."""

# First: TensorFlow's C++ start-up lines stay off stderr (see the module).
from keras_diffusion.utils import quiet_tensorflow as _quiet_tensorflow

_quiet_tensorflow.install()

from keras_diffusion import app
from keras_diffusion import callbacks
from keras_diffusion import data
from keras_diffusion import guidance
from keras_diffusion import layers
from keras_diffusion import metrics
from keras_diffusion import models
from keras_diffusion import networks
from keras_diffusion import presets
from keras_diffusion import samplers
from keras_diffusion import schedules
from keras_diffusion import viz
from keras_diffusion.models import DDPM
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.models import LatentRectifiedFlow
from keras_diffusion.models import NoisyClassifier
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.networks import TimeConditionedClassifier
from keras_diffusion.networks import UNet
from keras_diffusion.app.export import export_model
from keras_diffusion.presets import available_models
from keras_diffusion.presets import load_model
from keras_diffusion.presets import save_to_preset
from keras_diffusion.samplers import DDIMSampler
from keras_diffusion.samplers import DDPMSampler
from keras_diffusion.samplers import DPMSolverSampler
from keras_diffusion.samplers import EulerSampler
from keras_diffusion.samplers import HeunSampler
from keras_diffusion.schedules import CosineSchedule
from keras_diffusion.schedules import LinearBetaSchedule
from keras_diffusion.version import __version__

# The public API: what `from keras_diffusion import *` gives and what
# docs/api.md (`python docs/make_api.py`) documents. Every name imported
# above is listed (tests/test_api_docs.py checks it).
__all__ = [
    # models
    "DDPM", "LatentDiffusion", "LatentRectifiedFlow", "NoisyClassifier",
    "RectifiedFlow",
    # networks
    "TimeConditionedClassifier", "UNet",
    # samplers and schedules
    "DDIMSampler", "DDPMSampler", "DPMSolverSampler", "EulerSampler",
    "HeunSampler", "CosineSchedule", "LinearBetaSchedule",
    # shipped models, presets and export
    "available_models", "export_model", "load_model", "save_to_preset",
    # modules
    "app", "callbacks", "data", "guidance", "layers", "metrics", "models",
    "networks", "presets", "samplers", "schedules", "viz",
]
