import keras
import numpy as np
from keras import ops

from keras_diffusion.guidance import Conditioning
from keras_diffusion.guidance import classifier_free_guidance
from keras_diffusion.guidance import classifier_guided_model_fn
from keras_diffusion.models.trainable_model import TrainableModel
from keras_diffusion.samplers import make_step_function
from keras_diffusion.samplers import run_sampler
from keras_diffusion.utils.checks import check_share
from keras_diffusion.utils.replicas import draw_for_global_batch


class GenerativeModel(TrainableModel):
    """Base of `DDPM` and `RectifiedFlow`: a network that is integrated from
    noise to images by a step-wise sampler.

    It holds what the two share: the network and its class conditioning
    (condition dropout while training, classifier-free guidance while
    sampling), the training-noise `SeedGenerator`, batched and seeded
    sampling with a cached compiled step (`generate`), and saving (presets
    and `fit` come from `TrainableModel`). A subclass defines the loss
    (`compute_loss`), the map from a sampler's `t` to the network's time in
    [0, 1] (`network_times`), and its samplers (`make_sampler`,
    `sampler_names`, `default_sampler`).

    The loss lives in `compute_loss`, so every backend's own `train_step`
    computes gradients and `model.fit` just works; `call()` returns its
    inputs so the network runs once per step.

    Args:
        network: a `keras.Model` taking `{"noisy_images", "times"}` (times
            in [0, 1]; plus `"labels"` if conditional) and returning an
            image-shaped prediction, such as `keras_diffusion.networks.UNet`.
        seed: int or None, seeds the training noise.
        cond_drop_prob: float in [0, 1], the rate of condition dropout.
        **kwargs: standard `keras.Model` arguments.
    """

    # Names `make_sampler` accepts, and the one used when none is given.
    sampler_names = ()
    default_sampler = None
    # Pixel models sample images in [-1, 1]; the latent models override this
    # and `to_images` (see `keras_diffusion.models.latent`).
    clip_sample = True

    def __init__(self, network, seed=None, cond_drop_prob=0.1, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.seed = seed
        self.cond_drop_prob = check_share("cond_drop_prob", cond_drop_prob)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.image_shape = tuple(network.input["noisy_images"].shape[1:])
        self.num_classes = getattr(network, "num_classes", None)
        self._step_functions = {}
        self.built = True

    def call(self, inputs, training=False):
        # The network runs inside `compute_loss`; see the class docstring.
        return inputs

    @property
    def conditional(self):
        return self.num_classes is not None

    def network_times(self, t):
        """A sampler's `t` -> the network's times in [0, 1]."""
        raise NotImplementedError

    def make_sampler(self, sampler=None, num_steps=None, eta=0.0,
                     pred_noise_scale=None):
        """Returns the sampler object for a name in `sampler_names`
        (`pred_noise_scale`: a diffusion model's; `None`, its own)."""
        raise NotImplementedError

    def run_network(self, samples, times, labels=None, training=False):
        """The network's prediction at network `times` (broadcast to the batch).

        For a conditional network, `labels=None` means the null class.
        """
        samples = ops.convert_to_tensor(samples)
        batch_size = ops.shape(samples)[0]
        times = ops.broadcast_to(ops.cast(times, "float32"), (batch_size,))
        inputs = {"noisy_images": samples, "times": times}
        if self.conditional:
            if labels is None:
                labels = ops.full((batch_size,), self.num_classes, "int32")
            inputs["labels"] = ops.cast(labels, "int32")
        return self.network(inputs, training=training)

    def guided_output(self, samples, times, labels, guidance):
        """Classifier-free guidance: `uncond + guidance * (cond - uncond)`.

        Both predictions come from one forward pass over a doubled batch
        (`guidance.classifier_free_guidance`).
        """
        return classifier_free_guidance(
            lambda x, y: self.run_network(x, times, y), samples, labels,
            self.num_classes, guidance)

    def drop_labels(self, labels):
        """Replaces each label by the null class with `cond_drop_prob`."""
        drop = draw_for_global_batch(keras.random.uniform, ops.shape(labels),
                                     seed=self.seed_generator)
        null_labels = ops.full(ops.shape(labels), self.num_classes, "int32")
        return ops.where(drop < self.cond_drop_prob, null_labels,
                         ops.cast(labels, "int32"))

    def training_labels(self, labels):
        """The labels of a training batch, after condition dropout.

        `None` for an unconditional model; a conditional one needs labels.
        """
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError(
                "This model is class-conditional: train it with "
                "`model.fit(images, labels)`."
            )
        return self.drop_labels(ops.reshape(labels, (-1,)))

    def model_fn(self, samples, t, context):
        """The sampling step's network: `(samples, t, context) -> prediction`.

        `t` is the sampler's time (a `DDPM`'s integer timestep, a flow's
        time); `context` is `None` (unconditional) or the labels and
        guidance weight of classifier-free guidance (`Conditioning.context`).
        """
        times = self.network_times(t)
        if context is None:
            return self.run_network(samples, times)
        return self.guided_output(samples, times, context["labels"],
                                  context["guidance"])

    def generate(self, num_images=16, sampler=None, num_steps=None, eta=0.0,
                 seed=0, batch_size=256, progress=True, compile=True,
                 labels=None, guidance=None, return_trajectory=False,
                 trajectory_frames=None, classifier=None, classifier_scale=None,
                 pred_noise_scale=None):
        """Samples images, returned as a NumPy array in [0, 1].

        Args:
            num_images: int, how many images.
            sampler: a name in `sampler_names` (`"ddpm"`, `"ddim"`,
                `"dpm"` or `"dpm-sde"` for a `DDPM`, `"euler"` or `"heun"`
                for a `RectifiedFlow`); `None` means `default_sampler`.
            num_steps: int, sampling steps; `None` means the sampler's
                default (T for DDPM, 50 for DDIM, 10 for DPM-Solver++, 16
                for Euler, 8 for Heun).
            eta: float, DDIM's stochasticity (0 = deterministic).
            seed: int; the initial and per-step noise come from
                `numpy.random.default_rng(seed)`, so a saved model gives the
                same images under every backend.
            batch_size: int, images sampled at once (bounds memory).
            progress: bool, show a progress bar.
            compile: bool, compile the sampling step for the backend.
            labels: for a conditional model, an int class for all images or
                one int per image; `None` samples without a condition.
            guidance: float >= 0, the classifier-free guidance weight (needs
                `labels`); default 1 (plain conditional).
            return_trajectory: bool; also return the model's prediction of
                the final images after each sampling step (DDPM/DDIM/DPM:
                the x_0 estimate; a flow: `x_t + (1 - t) * v`), for animations.
                It uses a second compiled step that also returns the
                prediction; without it, sampling computes nothing extra.
            trajectory_frames: int >= 1 or `None`; with `return_trajectory`,
                keep the predictions of at most this many steps, evenly
                spaced and always including the last; `None` keeps every
                step.
            classifier: a `NoisyClassifier` for classifier guidance of an
                unconditional pixel-space `DDPM` (see
                `guidance.check_classifier`); `labels` are then the classes
                to steer toward.
            classifier_scale: float >= 0, the classifier guidance scale
                (default 1); 0 skips the classifier, so the samples are
                exactly the unguided ones.
            pred_noise_scale: float > 0, what a `DDPM`'s sampler multiplies
                the noise predictions by; `None` means the model's
                `pred_noise_scale`, or 1 with classifier guidance.

        Returns:
            float32 array of shape `(num_images, height, width, channels)`;
            with `return_trajectory`, `(images, trajectory)`, the trajectory
            shaped `(num_frames, num_images, height, width, channels)`, also
            in [0, 1].

        Example:
        >>> images = model.generate(16, sampler="ddim", num_steps=50, seed=0)
        >>> images, frames = model.generate(16, return_trajectory=True,
        ...                                 trajectory_frames=49)
        """
        if int(num_images) < 1:
            raise ValueError(f"`num_images` must be >= 1. Got {num_images}")
        conditioning = Conditioning.resolve(self, num_images, labels, guidance,
                                            classifier, classifier_scale)
        step_sampler = self._step_sampler(sampler, num_steps, eta, conditioning,
                                          pred_noise_scale)
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((num_images,) + self.image_shape).astype("float32")
        samples = self._sample(noise, step_sampler, conditioning, rng,
                               batch_size, progress, compile,
                               return_trajectory, trajectory_frames)
        if not return_trajectory:
            return self.to_images(samples)
        samples, trajectory = samples
        frames = self.to_images(trajectory.reshape((-1,) + self.image_shape))
        return self.to_images(samples), frames.reshape(
            trajectory.shape[:2] + frames.shape[1:])

    def sample_from_noise(self, noise, sampler=None, num_steps=None, eta=0.0,
                          seed=0, batch_size=256, progress=True, compile=True,
                          labels=None, guidance=None, return_trajectory=False,
                          trajectory_frames=None, classifier=None,
                          classifier_scale=None, pred_noise_scale=None):
        """Runs a sampler from the given initial `noise`.

        Unlike `generate`, this returns the samples in the model's own space
        (pixels in about [-1, 1], or a latent model's scaled latents),
        undecoded and unclipped.

        Args:
            noise: float array `(N,) + image_shape`, the samples at the
                start (standard normal).
            seed: int or `numpy.random.Generator`, seeds the per-step noise
                of stochastic samplers.
            sampler, num_steps, eta, batch_size, progress, compile, labels,
            guidance, return_trajectory, trajectory_frames, classifier,
            classifier_scale, pred_noise_scale: as for `generate`.

        Returns:
            float32 NumPy array shaped like `noise`; with
            `return_trajectory`, `(samples, trajectory)`, the trajectory
            `(num_frames,) + noise.shape` in the model's space.
        """
        noise = np.asarray(noise, "float32")
        if noise.ndim != len(self.image_shape) + 1 or (
            noise.shape[1:] != self.image_shape
        ) or len(noise) == 0:
            raise ValueError(
                f"`noise` must have shape (N,) + {self.image_shape} with "
                f"N >= 1. Got {noise.shape}"
            )
        conditioning = Conditioning.resolve(self, len(noise), labels, guidance,
                                            classifier, classifier_scale)
        return self._sample(noise,
                            self._step_sampler(sampler, num_steps, eta, conditioning,
                                               pred_noise_scale),
                            conditioning, seed, batch_size, progress, compile,
                            return_trajectory, trajectory_frames)

    def _step_sampler(self, sampler, num_steps, eta, conditioning,
                      pred_noise_scale):
        """The sampler object of `generate` and `sample_from_noise`.

        Without a `pred_noise_scale`, classifier guidance (a `DDPM` only)
        samples the network's noise predictions unscaled: its gradient
        already sharpens the samples, and the model's scale on top of it
        raised FID (docs/classifier_guidance.md#scaled-noise-predictions).
        """
        if pred_noise_scale is None and conditioning.steering_classifier is not None:
            pred_noise_scale = 1.0
        return self.make_sampler(sampler, num_steps, eta, pred_noise_scale)

    def _sample(self, noise, step_sampler, conditioning, seed, batch_size,
                progress, compile, return_trajectory, trajectory_frames):
        """`sample_from_noise` with its arguments checked: `step_sampler` a
        sampler object, `conditioning` a resolved `Conditioning`."""
        if int(batch_size) < 1:
            raise ValueError(f"`batch_size` must be >= 1. Got {batch_size}")
        batch_size = int(batch_size)
        record_steps = None
        if return_trajectory:
            record_steps = trajectory_steps(len(step_sampler.timesteps()),
                                            trajectory_frames)
        step_fn = self.step_function(step_sampler, compile,
                                     classifier=conditioning.steering_classifier)
        rng = np.random.default_rng(seed)
        batches = range(0, len(noise), batch_size)
        bar = None
        if progress:
            bar = keras.utils.Progbar(
                len(batches) * len(step_sampler.timesteps()), unit_name="step"
            )
        outputs = []
        for index, start in enumerate(batches):
            outputs.append(
                run_sampler(
                    step_sampler,
                    step_fn,
                    noise[start : start + batch_size],
                    seed=int(rng.integers(2**31)) + index,
                    progress=bar or False,
                    context=conditioning.context(start, start + batch_size),
                    record_steps=record_steps,
                )
            )
        if not return_trajectory:
            return np.concatenate(outputs)
        return (np.concatenate([samples for samples, _ in outputs]),
                np.concatenate([frames for _, frames in outputs], axis=1))

    @property
    def output_image_shape(self):
        """The `(height, width, channels)` of the images `generate` returns
        (`image_shape`, the samples' own, for a pixel-space model)."""
        return self.image_shape

    def to_images(self, samples):
        """Samples -> images in [0, 1] (NumPy)."""
        return np.clip((samples + 1.0) / 2.0, 0.0, 1.0)

    def step_function(self, sampler, compile=True, classifier=None):
        """The compiled sampling step of `sampler` on this model's network
        (see `samplers.make_step_function`), with classifier guidance if
        `classifier` is given.

        Compiled steps are cached per sampler setting (its type and every
        plain setting it holds: steps, `eta`, `clip_sample`, `stochastic`,
        ...): a second `generate` (say, at each epoch's end) reuses the
        compiled graph. A cached classifier-guided step holds its
        classifier, so its id stays unique.
        """
        settings = tuple(sorted(
            (name, value) for name, value in vars(sampler).items()
            if isinstance(value, (bool, int, float, str))))
        key = (type(sampler).__name__, settings, compile,
               None if classifier is None else id(classifier))
        if key not in self._step_functions:
            model_fn, variables = self.model_fn, self.network.variables
            if classifier is not None:
                model_fn = classifier_guided_model_fn(self, classifier)
                variables = variables + classifier.variables
            self._step_functions[key] = make_step_function(
                sampler, model_fn, variables, compile)
        return self._step_functions[key]

    def _unknown_sampler(self, sampler, others):
        """The error for a sampler name this model does not take."""
        return ValueError(
            f"Unknown sampler {sampler!r} for a {type(self).__name__}; choose "
            f"one of {', '.join(self.sampler_names)} ({others})."
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "seed": self.seed,
                "cond_drop_prob": self.cond_drop_prob,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


def trajectory_steps(num_steps, max_frames=None):
    """Indices of at most `max_frames` of `num_steps` steps, evenly spaced,
    always including the last (all of them for `max_frames=None`).

    Example:
    >>> trajectory_steps(10, 4)
    [0, 3, 6, 9]
    """
    if max_frames is not None and (isinstance(max_frames, bool)
                                   or int(max_frames) < 1):
        raise ValueError(f"`trajectory_frames` must be >= 1. Got {max_frames}")
    if max_frames is None or int(max_frames) >= num_steps:
        return list(range(num_steps))
    if int(max_frames) == 1:
        return [num_steps - 1]
    return sorted(set(
        np.linspace(0, num_steps - 1, int(max_frames)).round().astype(int).tolist()
    ))


def unpack_batch(x, y):
    """(images, labels) from `fit(images, labels)` or `fit((images, labels))`."""
    if isinstance(x, (tuple, list)):
        return (x[0], x[1]) if len(x) > 1 else (x[0], y)
    return x, y
