"""A sampling request's conditioning, checked once; the defaults of guided
sampling; and the class labels of a batch.

`Conditioning.resolve` is the one place where the labels, the
classifier-free guidance weight and the classifier of classifier guidance
are checked against a model; `GenerativeModel.generate` calls it once.
`kd sample`, `kd evaluate`, the FID callback and `kd export` take their
defaults from here (`keras_diffusion.app.sample.resolve_conditioning`
fills them in, then resolves).
"""

import dataclasses

import numpy as np
from keras import ops

from keras_diffusion.guidance.classifier import check_classifier
from keras_diffusion.guidance.limits import check_classifier_scale
from keras_diffusion.guidance.limits import check_guidance

# Classifier-free guidance weight when a class-conditional model is sampled
# without one (docs/guidance.md sweeps 0-8).
DEFAULT_GUIDANCE = 4.0
# Classifier guidance scale (docs/classifier_guidance.md has the sweep).
DEFAULT_CLASSIFIER_SCALE = 5.0
# Classifier guidance steers far better with stochastic steps than with
# deterministic ones (the fresh noise corrects what the gradient pushes off
# the digits); SDE-DPM-Solver++ in 10 steps does about as well as DDPM in 50
# in a fifth of the time (docs/classifier_guidance.md).
CLASSIFIER_SAMPLER = "dpm-sde"
CLASSIFIER_STEPS = 10
# Images per class of a grid of every class.
PER_CLASS_DEFAULT = 8


def class_rows(num_classes, num_images=None):
    """`(labels, num_columns)` to sample every class, sorted by class.

    `num_images` exactly (default `PER_CLASS_DEFAULT` per class), as evenly
    shared as it divides; `num_columns` puts one class per grid row when
    every class has as many images, else it is `None` (the default grid).
    """
    if num_images is None:
        num_images = PER_CLASS_DEFAULT * num_classes
    labels = np.sort(np.arange(int(num_images)) % num_classes)
    even = num_images % num_classes == 0
    return labels, (num_images // num_classes if even else None)


def cycled_labels(num_classes, num_images, start=0):
    """The classes in turn, `0, 1, ..., num_classes - 1, 0, ...`, for images
    `start` to `start + num_images` (equal counts when it divides)."""
    return (np.arange(start, start + int(num_images)) % num_classes).astype("int32")


def classifier_sampler(sampler=None, num_steps=None):
    """`(sampler, num_steps)` for classifier guidance: `CLASSIFIER_SAMPLER`
    with `CLASSIFIER_STEPS` unless a sampler is given (then its own default
    step count)."""
    if sampler is None:
        return CLASSIFIER_SAMPLER, CLASSIFIER_STEPS if num_steps is None else num_steps
    return sampler, num_steps


@dataclasses.dataclass(frozen=True, eq=False)
class Conditioning:
    """How a batch of samples is conditioned, checked against its model.

    Build it with `Conditioning.resolve`. Unconditional sampling has no
    labels; otherwise either classifier-free guidance (`guidance`) or
    classifier guidance (`classifier`, `classifier_scale`; at scale 0
    sampling is exactly unguided) is set.

    Attributes:
        labels: int32 array `(num_images,)`, or `None`.
        guidance: float, the classifier-free guidance weight, or `None`.
        classifier: the `NoisyClassifier` of classifier guidance, or `None`.
        classifier_scale: float, its scale, or `None`.
    """

    labels: np.ndarray = None
    guidance: float = None
    classifier: object = None
    classifier_scale: float = None

    @classmethod
    def resolve(cls, model, num_images, labels=None, guidance=None,
                classifier=None, classifier_scale=None):
        """Checks a request against `model`; `ValueError` names the
        parameter that is wrong.

        Args:
            model: the `GenerativeModel` to sample.
            num_images: int, the images sampled.
            labels: an int class for every image, one per image, or `None`
                (unconditional).
            guidance: float in [0, `MAX_GUIDANCE`], classifier-free guidance
                of a class-conditional model (default 1: plain conditional).
            classifier: a `NoisyClassifier` steering an unconditional
                pixel-space DDPM toward `labels` (see `check_classifier`).
            classifier_scale: float in [0, `MAX_CLASSIFIER_SCALE`] (default
                1; 0 is unguided).

        Returns:
            A `Conditioning`.
        """
        guidance = check_guidance(guidance)
        classifier_scale = check_classifier_scale(classifier_scale)
        if classifier is None:
            if classifier_scale is not None:
                raise ValueError(
                    "`classifier_scale` needs `classifier` (a noisy-image "
                    "classifier, such as the shipped one, \"classifier\").")
            if not model.conditional:
                given = [f"`{name}`" for name, value in
                         (("labels", labels), ("guidance", guidance))
                         if value is not None]
                if given:
                    raise ValueError(
                        f"{' and '.join(given)} need{'s' * (len(given) == 1)} "
                        "a class-conditional model (or a `classifier`, for "
                        "classifier guidance); this one is unconditional.")
                return cls()
            if labels is None:
                if guidance is not None:
                    raise ValueError("`guidance` needs class labels to steer "
                                     "toward (`labels`).")
                return cls()
            labels = class_labels(labels, num_images, model.num_classes)
            return cls(labels, 1.0 if guidance is None else guidance)
        check_classifier(model, classifier)
        if guidance is not None:
            raise ValueError("`guidance` (classifier-free) needs a "
                             "class-conditional model; with a `classifier`, "
                             "set `classifier_scale`.")
        if labels is None:
            raise ValueError("Classifier guidance needs class labels to steer "
                             "toward (`labels`).")
        labels = class_labels(labels, num_images, classifier.num_classes)
        scale = 1.0 if classifier_scale is None else classifier_scale
        return cls(labels, None, classifier, scale)

    @property
    def steering_classifier(self):
        """The classifier that steers sampling: `classifier`, unless its
        scale is 0 (then sampling is exactly unguided) or there is none."""
        return self.classifier if self.classifier_scale else None

    def context(self, start=0, stop=None):
        """The `context` of the sampling step for images `start` to `stop`:
        the labels, and the guidance weight or the classifier scale, as
        tensors; `None` when nothing conditions the step."""
        if self.labels is None or (self.classifier is not None
                                   and not self.classifier_scale):
            return None
        context = {"labels": ops.convert_to_tensor(self.labels[start:stop])}
        if self.classifier is not None:
            context["classifier_scale"] = ops.convert_to_tensor(
                np.float32(self.classifier_scale))
        else:
            context["guidance"] = ops.convert_to_tensor(np.float32(self.guidance))
        return context


def class_labels(labels, num_images, num_classes, name="labels"):
    """`labels` (one int, or one per image) as `num_images` int32 labels;
    `ValueError`, naming the parameter `name`, unless each is a class from
    0 to `num_classes - 1`."""
    given = np.asarray(labels)
    if (given.ndim > 1 or given.size not in (1, int(num_images))
            or given.dtype.kind not in "iuf"
            or np.any(given.astype("int64") != given)):
        raise ValueError(
            f"`{name}` must be one int class or one per image ({num_images}). "
            f"Got {given.tolist()!r}")
    labels = np.broadcast_to(given.astype("int32").reshape(-1),
                             (int(num_images),))
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"`{name}` must be a class in 0-{num_classes - 1} "
            f"({num_classes} classes). Got "
            f"{sorted(set(labels.tolist()))}")
    return labels
