"""keras_diffusion: diffusion and flow models on small images, in Keras 3."""

from keras_diffusion import layers
from keras_diffusion import models
from keras_diffusion import networks
from keras_diffusion import reflow
from keras_diffusion import samplers
from keras_diffusion import schedules
from keras_diffusion.models import DDPM
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.models import LatentRectifiedFlow
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.networks import UNet
from keras_diffusion.pretrained import available_models
from keras_diffusion.pretrained import load_model
from keras_diffusion.samplers import DDIMSampler
from keras_diffusion.samplers import DDPMSampler
from keras_diffusion.samplers import EulerSampler
from keras_diffusion.samplers import HeunSampler
from keras_diffusion.schedules import CosineSchedule
from keras_diffusion.schedules import LinearBetaSchedule
from keras_diffusion.version import __version__
