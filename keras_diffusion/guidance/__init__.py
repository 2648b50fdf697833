"""Guidance: the classifier gradient that steers sampling toward a class,
and the accepted ranges of the guidance weights."""

from keras_diffusion.guidance.classifier_gradient import classifier_log_prob_gradient
from keras_diffusion.guidance.limits import MAX_CLASSIFIER_SCALE
from keras_diffusion.guidance.limits import MAX_GUIDANCE
from keras_diffusion.guidance.limits import check_classifier_scale
from keras_diffusion.guidance.limits import check_guidance

__all__ = ["MAX_CLASSIFIER_SCALE", "MAX_GUIDANCE", "check_classifier_scale",
           "check_guidance", "classifier_log_prob_gradient"]
