"""Guidance: the classifier gradient that steers sampling toward a class."""

from keras_diffusion.guidance.classifier_gradient import classifier_log_prob_gradient

__all__ = ["classifier_log_prob_gradient"]
