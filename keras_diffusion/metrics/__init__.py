"""Metrics: the Fréchet distance and the shipped MNIST evaluator."""

from keras_diffusion.metrics.evaluator import Evaluator
from keras_diffusion.metrics.frechet_distance import frechet_distance

__all__ = ["Evaluator", "frechet_distance"]
