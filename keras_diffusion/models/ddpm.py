import keras
import numpy as np
from keras import ops

from keras_diffusion.samplers import DDIMSampler
from keras_diffusion.samplers import DDPMSampler
from keras_diffusion.samplers import make_step_function
from keras_diffusion.samplers import run_sampler
from keras_diffusion.schedules import as_schedule

SAMPLERS = ("ddpm", "ddim")


@keras.saving.register_keras_serializable(package="keras_diffusion")
class DDPM(keras.Model):
    """Denoising diffusion model trained to predict the added noise.

    Training follows DDPM (Ho et al., 2020, Algorithm 1): for each image draw
    a timestep `t ~ U{0, T-1}` and noise `eps ~ N(0, I)`, form
    `noisy_images = signal_rate(t) * images + noise_rate(t) * eps`, and
    minimize `mean((network(noisy_images, t / T) - eps) ** 2)`.

    The loss lives in `compute_loss`, so every backend's own `train_step`
    computes gradients and `model.fit(images)` just works; `call()` returns
    its inputs so the network runs once per step. The noise comes from a
    `keras.random.SeedGenerator` attached to the model, whose state is a
    model variable (so it advances under JAX and is saved with the model).

    Class-conditional networks (a `UNet` with `num_classes`) train on
    `model.fit(images, labels)`. With probability `cond_drop_prob` a label is
    replaced by the null class `num_classes`, so one network learns both the
    conditional and the unconditional prediction, and sampling can use
    classifier-free guidance (Ho & Salimans, 2022):
    `pred = uncond + guidance * (cond - uncond)`, computed in one batched
    forward pass (`guidance = 0` is unconditional, `1` plain conditional).

    Args:
        network: a `keras.Model` taking `{"noisy_images", "times"}` (times
            in [0, 1]; plus `"labels"` if conditional) and returning an
            image-shaped noise prediction, such as
            `keras_diffusion.networks.UNet`.
        schedule: a `NoiseSchedule`, or `"linear"` / `"cosine"`.
        seed: int or None, seeds the training noise.
        cond_drop_prob: float in [0, 1], the rate of condition dropout.
        **kwargs: standard `keras.Model` arguments.

    Example:
    >>> model = DDPM(UNet(widths=(16, 32)))
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    >>> model.fit(images, batch_size=64, epochs=1)  # images in [-1, 1]
    >>> samples = model.generate(16, sampler="ddim", num_steps=50)
    """

    def __init__(self, network, schedule="linear", seed=None, cond_drop_prob=0.1,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= cond_drop_prob <= 1.0:
            raise ValueError(
                f"`cond_drop_prob` must be in [0, 1]. Got {cond_drop_prob}"
            )
        self.network = network
        self.schedule = as_schedule(schedule)
        self.seed = seed
        self.cond_drop_prob = cond_drop_prob
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.image_shape = tuple(network.input["noisy_images"].shape[1:])
        self.num_classes = getattr(network, "num_classes", None)
        self._step_functions = {}
        self.built = True

    def call(self, inputs, training=False):
        # The network runs inside `compute_loss`; see the class docstring.
        return inputs

    def network_times(self, timesteps):
        """Integer timesteps `0 .. T-1` -> the network's times in [0, 1)."""
        return ops.cast(timesteps, "float32") / self.schedule.num_timesteps

    @property
    def conditional(self):
        return self.num_classes is not None

    def predict_noise(self, noisy_images, timesteps, labels=None, training=False):
        """The network's noise prediction at integer `timesteps`.

        For a conditional network, `labels=None` means the null class.
        """
        noisy_images = ops.convert_to_tensor(noisy_images)
        batch_size = ops.shape(noisy_images)[0]
        timesteps = ops.broadcast_to(timesteps, (batch_size,))
        inputs = {"noisy_images": noisy_images, "times": self.network_times(timesteps)}
        if self.conditional:
            if labels is None:
                labels = ops.full((batch_size,), self.num_classes, "int32")
            inputs["labels"] = ops.cast(labels, "int32")
        return self.network(inputs, training=training)

    def guided_noise(self, noisy_images, timesteps, labels, guidance):
        """Classifier-free guidance: `uncond + guidance * (cond - uncond)`.

        Both predictions come from one forward pass over a doubled batch.
        """
        null_labels = ops.full(ops.shape(labels), self.num_classes, "int32")
        both = self.predict_noise(
            ops.concatenate([noisy_images, noisy_images], axis=0),
            timesteps,
            ops.concatenate([ops.cast(labels, "int32"), null_labels], axis=0),
        )
        cond, uncond = ops.split(both, 2, axis=0)
        return uncond + guidance * (cond - uncond)

    def drop_labels(self, labels):
        """Replaces each label by the null class with `cond_drop_prob`."""
        drop = keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
        null_labels = ops.full(ops.shape(labels), self.num_classes, "int32")
        return ops.where(drop < self.cond_drop_prob, null_labels,
                         ops.cast(labels, "int32"))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        images, labels = _unpack(x, y)
        if self.conditional:
            if labels is None:
                raise ValueError(
                    "This model is class-conditional: train it with "
                    "`model.fit(images, labels)`."
                )
            labels = self.drop_labels(ops.reshape(labels, (-1,)))
        batch_size = ops.shape(images)[0]
        timesteps = keras.random.randint(
            (batch_size,), 0, self.schedule.num_timesteps, seed=self.seed_generator
        )
        noises = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        noisy_images = self.schedule.add_noise(images, noises, timesteps)
        pred_noises = self.predict_noise(noisy_images, timesteps, labels,
                                         training=training)
        return ops.mean(ops.square(pred_noises - noises))

    def _model_fn(self, samples, timesteps, context):
        if context is None:
            return self.predict_noise(samples, timesteps)
        return self.guided_noise(samples, timesteps, context["labels"],
                                 context["guidance"])

    def make_sampler(self, sampler="ddim", num_steps=None, eta=0.0):
        """Returns a DDPM or DDIM sampler for this model's schedule."""
        if sampler == "ddpm":
            return DDPMSampler(self.schedule, num_steps, clip_sample=self.clip_sample)
        if sampler == "ddim":
            return DDIMSampler(self.schedule, 50 if num_steps is None else num_steps,
                               eta, clip_sample=self.clip_sample)
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")

    def generate(self, num_images=16, sampler="ddim", num_steps=None, eta=0.0,
                 seed=0, batch_size=256, progress=True, compile=True,
                 labels=None, guidance=None):
        """Samples images, returned as a NumPy array in [0, 1].

        Args:
            num_images: int, how many images.
            labels: for a conditional model, an int class for all images or
                one int per image; `None` samples without a condition.
            guidance: float >= 0, the classifier-free guidance weight (needs
                `labels`); default 1 (plain conditional).
            sampler: `"ddpm"` (ancestral, T steps by default) or `"ddim"`.
            num_steps: int, denoising steps; default T for DDPM, 50 for DDIM.
            eta: float, DDIM's stochasticity (0 = deterministic).
            seed: int; the initial and per-step noise come from
                `numpy.random.default_rng(seed)`, so a saved model gives the
                same images under every backend.
            batch_size: int, images denoised at once (bounds memory).
            progress: bool, show a progress bar.
            compile: bool, compile the denoising step for the backend.

        Returns:
            float32 array of shape `(num_images, height, width, channels)`.
        """
        if int(num_images) < 1:
            raise ValueError(f"`num_images` must be >= 1. Got {num_images}")
        labels = self._check_labels(labels, guidance, num_images)
        step_sampler = self.make_sampler(sampler, num_steps, eta)
        step_fn = self._step_function(step_sampler, compile)
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((num_images,) + self.image_shape).astype("float32")
        batches = range(0, num_images, batch_size)
        bar = None
        if progress:
            bar = keras.utils.Progbar(
                len(batches) * len(step_sampler.timesteps()), unit_name="step"
            )
        outputs = []
        for index, start in enumerate(batches):
            context = None
            if labels is not None:
                context = {
                    "labels": ops.convert_to_tensor(labels[start : start + batch_size]),
                    "guidance": ops.convert_to_tensor(
                        np.float32(1.0 if guidance is None else guidance)
                    ),
                }
            outputs.append(
                run_sampler(
                    step_sampler,
                    step_fn,
                    noise[start : start + batch_size],
                    seed=int(rng.integers(2**31)) + index,
                    progress=bar or False,
                    context=context,
                )
            )
        return self.to_images(np.concatenate(outputs))

    # Pixel models denoise images in [-1, 1]; `LatentDiffusion` overrides
    # these two to denoise latents and decode them.
    clip_sample = True

    def to_images(self, samples):
        """Denoised samples -> images in [0, 1] (NumPy)."""
        return np.clip((samples + 1.0) / 2.0, 0.0, 1.0)

    def _check_labels(self, labels, guidance, num_images):
        if guidance is not None and float(guidance) < 0:
            raise ValueError(f"Guidance must be >= 0. Got {guidance}")
        if labels is None:
            if guidance is not None and self.conditional:
                raise ValueError("Guidance needs class labels to steer toward.")
            return None
        if not self.conditional:
            raise ValueError(
                "This model is unconditional: it takes no class labels."
            )
        labels = np.broadcast_to(np.asarray(labels, "int32"), (num_images,))
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"Class labels must be in 0-{self.num_classes - 1}. "
                f"Got {sorted(set(labels.tolist()))}"
            )
        return labels

    def _step_function(self, sampler, compile):
        # Compiled steps are cached per sampler setting: a second `generate`
        # (say, at each epoch's end) reuses the compiled graph.
        key = (type(sampler).__name__, sampler.num_steps,
               getattr(sampler, "eta", None), sampler.clip_sample, compile)
        if key not in self._step_functions:
            self._step_functions[key] = make_step_function(
                sampler, self._model_fn, self.network.variables, compile
            )
        return self._step_functions[key]

    def fit(self, *args, **kwargs):
        history = super().fit(*args, **kwargs)
        if keras.backend.backend() == "jax" and getattr(
            self.optimizer, "use_ema", False
        ):
            # Keras' EMA finalize leaves each weight sharing its buffer with
            # its average under JAX, and a second `fit` then fails ("donate
            # the same buffer twice"). Give each weight its own copy.
            import jax.numpy as jnp

            for variable in self.trainable_variables:
                variable.assign(jnp.array(variable.value, copy=True))
        return history

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "schedule": keras.saving.serialize_keras_object(self.schedule),
                "seed": self.seed,
                "cond_drop_prob": self.cond_drop_prob,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def _unpack(x, y):
    """(images, labels) from `fit(images, labels)` or `fit((images, labels))`."""
    if isinstance(x, (tuple, list)):
        return (x[0], x[1]) if len(x) > 1 else (x[0], y)
    return x, y
