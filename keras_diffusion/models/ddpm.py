import keras
from keras import ops

from keras_diffusion.models.generative_model import GenerativeModel
from keras_diffusion.models.generative_model import unpack_batch
from keras_diffusion.samplers import DDIMSampler
from keras_diffusion.samplers import DDPMSampler
from keras_diffusion.schedules import as_schedule

SAMPLERS = ("ddpm", "ddim")


@keras.saving.register_keras_serializable(package="keras_diffusion")
class DDPM(GenerativeModel):
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

    Conditioning, guidance, `generate` and saving are shared with
    `RectifiedFlow` through `GenerativeModel`.

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

    sampler_names = SAMPLERS
    default_sampler = "ddim"

    def __init__(self, network, schedule="linear", seed=None, cond_drop_prob=0.1,
                 **kwargs):
        super().__init__(network, seed=seed, cond_drop_prob=cond_drop_prob,
                         **kwargs)
        self.schedule = as_schedule(schedule)

    def network_times(self, timesteps):
        """Integer timesteps `0 .. T-1` -> the network's times in [0, 1)."""
        return ops.cast(timesteps, "float32") / self.schedule.num_timesteps

    def predict_noise(self, noisy_images, timesteps, labels=None, training=False):
        """The network's noise prediction at integer `timesteps`.

        For a conditional network, `labels=None` means the null class.
        """
        return self.run_network(noisy_images, self.network_times(timesteps),
                                labels, training=training)

    def guided_noise(self, noisy_images, timesteps, labels, guidance):
        """Classifier-free guidance: `uncond + guidance * (cond - uncond)`.

        Both predictions come from one forward pass over a doubled batch.
        """
        return self.guided_output(noisy_images, self.network_times(timesteps),
                                  labels, guidance)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        images, labels = unpack_batch(x, y)
        labels = self.training_labels(labels)
        batch_size = ops.shape(images)[0]
        timesteps = keras.random.randint(
            (batch_size,), 0, self.schedule.num_timesteps, seed=self.seed_generator
        )
        noises = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        noisy_images = self.schedule.add_noise(images, noises, timesteps)
        pred_noises = self.predict_noise(noisy_images, timesteps, labels,
                                         training=training)
        return ops.mean(ops.square(pred_noises - noises))

    def make_sampler(self, sampler=None, num_steps=None, eta=0.0):
        """Returns a DDPM or DDIM sampler for this model's schedule.

        `sampler=None` means `"ddim"`; `num_steps=None` means T for DDPM and
        50 for DDIM.
        """
        sampler = self.default_sampler if sampler is None else sampler
        if sampler == "ddpm":
            return DDPMSampler(self.schedule, num_steps, clip_sample=self.clip_sample)
        if sampler == "ddim":
            return DDIMSampler(self.schedule, 50 if num_steps is None else num_steps,
                               eta, clip_sample=self.clip_sample)
        raise self._unknown_sampler(
            sampler, "euler and heun sample rectified flows"
        )

    def get_config(self):
        config = super().get_config()
        config["schedule"] = keras.saving.serialize_keras_object(self.schedule)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return super().from_config(config)
