"""Guidance: classifier-free guidance, the classifier gradient that steers
sampling toward a class,
the accepted ranges of the guidance weights, and the defaults and class
labels of guided sampling."""

from keras_diffusion.guidance.classifier_free import classifier_free_guidance
from keras_diffusion.guidance.classifier_gradient import classifier_log_prob_gradient
from keras_diffusion.guidance.conditioning import CLASSIFIER_SAMPLER
from keras_diffusion.guidance.conditioning import CLASSIFIER_STEPS
from keras_diffusion.guidance.conditioning import DEFAULT_CLASSIFIER_SCALE
from keras_diffusion.guidance.conditioning import DEFAULT_GUIDANCE
from keras_diffusion.guidance.conditioning import PER_CLASS_DEFAULT
from keras_diffusion.guidance.conditioning import class_rows
from keras_diffusion.guidance.conditioning import classifier_sampler
from keras_diffusion.guidance.conditioning import cycled_labels
from keras_diffusion.guidance.limits import MAX_CLASSIFIER_SCALE
from keras_diffusion.guidance.limits import MAX_GUIDANCE
from keras_diffusion.guidance.limits import check_classifier_scale
from keras_diffusion.guidance.limits import check_guidance

__all__ = ["CLASSIFIER_SAMPLER", "CLASSIFIER_STEPS", "DEFAULT_CLASSIFIER_SCALE",
           "DEFAULT_GUIDANCE", "MAX_CLASSIFIER_SCALE", "MAX_GUIDANCE",
           "PER_CLASS_DEFAULT", "check_classifier_scale", "check_guidance",
           "class_rows", "classifier_free_guidance",
           "classifier_log_prob_gradient", "classifier_sampler", "cycled_labels"]
