"""Metrics: the Fréchet distance, the shipped MNIST evaluator, and a flow's
straightness."""

from keras_diffusion.metrics.degrade import gaussian_blur
from keras_diffusion.metrics.evaluator import Evaluator
from keras_diffusion.metrics.evaluator import as_evaluator
from keras_diffusion.metrics.evaluator import reference_path
from keras_diffusion.metrics.frechet_distance import feature_statistics
from keras_diffusion.metrics.frechet_distance import frechet_distance
from keras_diffusion.metrics.frechet_distance import frechet_distance_from_statistics
from keras_diffusion.metrics.straightness import straightness

__all__ = ["Evaluator", "as_evaluator", "feature_statistics", "frechet_distance",
           "frechet_distance_from_statistics", "gaussian_blur", "reference_path", "straightness"]
