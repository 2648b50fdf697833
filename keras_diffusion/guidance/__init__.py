"""Guidance: classifier-free guidance, classifier guidance (the classifier
gradient that steers sampling toward a class), the accepted ranges of the
guidance weights, and `Conditioning`, a sampling request's labels and
guidance checked once, with the defaults of guided sampling."""

from keras_diffusion.guidance.classifier_free import classifier_free_guidance
from keras_diffusion.guidance.classifier import check_classifier
from keras_diffusion.guidance.classifier import classifier_guided_model_fn
from keras_diffusion.guidance.classifier import classifier_log_prob_gradient
from keras_diffusion.guidance.conditioning import CLASSIFIER_SAMPLER
from keras_diffusion.guidance.conditioning import CLASSIFIER_STEPS
from keras_diffusion.guidance.conditioning import DEFAULT_CLASSIFIER_SCALE
from keras_diffusion.guidance.conditioning import DEFAULT_GUIDANCE
from keras_diffusion.guidance.conditioning import PER_CLASS_DEFAULT
from keras_diffusion.guidance.conditioning import Conditioning
from keras_diffusion.guidance.conditioning import class_labels
from keras_diffusion.guidance.conditioning import class_rows
from keras_diffusion.guidance.conditioning import classifier_sampler
from keras_diffusion.guidance.conditioning import cycled_labels
from keras_diffusion.guidance.limits import MAX_CLASSIFIER_SCALE
from keras_diffusion.guidance.limits import MAX_GUIDANCE
from keras_diffusion.guidance.limits import check_classifier_scale
from keras_diffusion.guidance.limits import check_guidance

__all__ = ["CLASSIFIER_SAMPLER", "CLASSIFIER_STEPS", "Conditioning",
           "DEFAULT_CLASSIFIER_SCALE", "DEFAULT_GUIDANCE",
           "MAX_CLASSIFIER_SCALE", "MAX_GUIDANCE", "PER_CLASS_DEFAULT",
           "check_classifier", "check_classifier_scale", "check_guidance",
           "class_labels", "class_rows", "classifier_free_guidance",
           "classifier_guided_model_fn", "classifier_log_prob_gradient",
           "classifier_sampler", "cycled_labels"]
