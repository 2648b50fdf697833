import keras
from keras import ops

from keras_diffusion.models.generative_model import GenerativeModel
from keras_diffusion.models.generative_model import unpack_batch
from keras_diffusion.samplers import DDIMSampler
from keras_diffusion.samplers import DDPMSampler
from keras_diffusion.samplers import DPMSolverSampler
from keras_diffusion.schedules import as_schedule
from keras_diffusion.utils.checks import check_choice
from keras_diffusion.utils.checks import check_positive
from keras_diffusion.utils.checks import check_share
from keras_diffusion.utils.replicas import draw_for_global_batch
from keras_diffusion.utils.replicas import scale_loss_for_replicas

SAMPLERS = ("ddpm", "ddim", "dpm", "dpm-sde")
LOSS_WEIGHTINGS = ("uniform", "min_snr", "min_snr_plus_one")
PREDICTIONS = ("epsilon", "v")


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

    An unconditional pixel-space model can instead be steered by a
    classifier of noisy images (`NoisyClassifier`; Dhariwal & Nichol, 2021):
    `generate(n, labels=7, classifier=classifier, classifier_scale=s)`
    samples with `eps - s * sqrt(1 - alpha_bar_t) * grad_x log p(y | x_t, t)`
    in place of the predicted noise `eps`, at every step of DDIM, DDPM or
    DPM-Solver++ (see `guidance.classifier_guided_model_fn`).

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
        loss_weighting: `"uniform"` (DDPM's simple loss), `"min_snr"`:
            each example's squared error is weighted by
            `min(SNR_t, min_snr_gamma) / SNR_t` (Min-SNR-gamma, Hang et al.,
            2023, for a noise prediction), which takes weight off the
            low-noise timesteps, or `"min_snr_plus_one"`:
            `min(SNR_t + 1, min_snr_gamma + 1) / SNR_t`, which also puts
            the weight of the v error back on the high-noise ones (for
            `"v"`, a plain v loss wherever `SNR_t < min_snr_gamma`).
        min_snr_gamma: float > 0, the gamma of the min-SNR weightings.
        prediction: what the network predicts: `"epsilon"` (the added
            noise, DDPM's) or `"v"` (`v = signal_rate * noise - noise_rate *
            images`, Salimans & Ho, 2022), which is closer to the image at
            high noise. Samplers always see a noise prediction
            (`noise_from_output`). For `"v"` the loss is the squared error
            of `v`, and the min-SNR weightings divide by `SNR_t + 1`
            instead of `SNR_t`: the same weight per timestep as for
            `"epsilon"`.
        pred_noise_scale: float > 0, what every sampler multiplies the
            noise predictions by (as the epsilon scaling of Ning et al.,
            2024; see `DDPMSampler`). 1 samples the network as it is;
            a little above 1 sharpens the samples of a network trained
            for minutes (docs/ddpm.md#scaled-noise-predictions).
            Classifier-guided sampling leaves the predictions unscaled.
        input_perturbation: float in [0, 1], the gamma of input perturbation
            (DDPM-IP, Ning et al., 2023): the training images are noised
            with `eps + gamma * xi` (`xi ~ N(0, I)`, drawn apart) while the
            target stays the plain `eps` (or its `v`), so the network sees
            inputs a little off the forward process, as a sampler's
            imperfect `x_t` are. 0 (the default) trains as DDPM; the paper
            uses 0.1.
        **kwargs: standard `keras.Model` arguments.

    Example:
    >>> model = DDPM(UNet(widths=(16, 32)))
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    >>> model.fit(images, batch_size=64, epochs=1)  # images in [-1, 1]
    >>> samples = model.generate(16)  # SDE-DPM-Solver++, 10 steps
    >>> samples = model.generate(16, sampler="ddim", num_steps=50)
    """

    sampler_names = SAMPLERS

    @property
    def default_sampler(self):
        """`"dpm-sde"` for an unconditional model, `"dpm"` for a
        class-conditional one: on the shipped models the SDE solver scores
        better without guidance and worse with it, both in 10 steps
        (docs/ddpm.md#the-default-sampler)."""
        return "dpm" if self.num_classes else "dpm-sde"

    def __init__(self, network, schedule="linear", seed=None, cond_drop_prob=0.1,
                 loss_weighting="uniform", min_snr_gamma=5.0, prediction="epsilon",
                 pred_noise_scale=1.0, input_perturbation=0.0, **kwargs):
        check_choice("prediction", prediction, PREDICTIONS)
        check_choice("loss_weighting", loss_weighting, LOSS_WEIGHTINGS)
        min_snr_gamma = check_positive("min_snr_gamma", min_snr_gamma)
        pred_noise_scale = check_positive("pred_noise_scale", pred_noise_scale)
        input_perturbation = check_share("input_perturbation",
                                         input_perturbation)
        super().__init__(network, seed=seed, cond_drop_prob=cond_drop_prob,
                         **kwargs)
        self.schedule = as_schedule(schedule)
        self.loss_weighting = loss_weighting
        self.min_snr_gamma = min_snr_gamma
        self.prediction = prediction
        self.pred_noise_scale = pred_noise_scale
        self.input_perturbation = input_perturbation

    def network_times(self, timesteps):
        """Integer timesteps `0 .. T-1` -> the network's times in [0, 1)."""
        return ops.cast(timesteps, "float32") / self.schedule.num_timesteps

    def predict_noise(self, noisy_images, timesteps, labels=None, training=False):
        """The network's noise prediction at integer `timesteps`.

        For a conditional network, `labels=None` means the null class.
        """
        outputs = self.run_network(noisy_images, self.network_times(timesteps),
                                   labels, training=training)
        return self.noise_from_output(outputs, noisy_images, timesteps)

    def noise_from_output(self, outputs, noisy_images, timesteps):
        """The noise prediction `eps` from the network's `outputs`.

        For `prediction="v"`, `x_t = alpha * x_0 + sigma * eps` and
        `v = alpha * eps - sigma * x_0` give `eps = sigma * x_t + alpha * v`
        (`alpha`, `sigma`: the signal and noise rates).
        """
        if self.prediction == "epsilon":
            return outputs
        signal_rates, noise_rates = self._rates(timesteps, outputs.dtype)
        return noise_rates * ops.cast(noisy_images, outputs.dtype) + signal_rates * outputs

    def _rates(self, timesteps, dtype="float32"):
        """Signal and noise rates of `timesteps`, shaped to broadcast over
        a batch of images."""
        return tuple(ops.cast(ops.reshape(rates, (-1, 1, 1, 1)), dtype) for rates in (
            self.schedule.signal_rates(timesteps),
            self.schedule.noise_rates(timesteps)))

    def model_fn(self, samples, t, context):
        """The sampling step's network, as a noise prediction (see
        `GenerativeModel.model_fn`; guidance combines the network's
        outputs, which is the same as combining noise predictions, since
        `noise_from_output` is affine in them)."""
        outputs = super().model_fn(samples, t, context)
        return self.noise_from_output(outputs, samples, t)

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
        noisy_images, noises, timesteps = self.schedule.noisy_training_batch(
            images, self.seed_generator)
        signal_rates, noise_rates = self._rates(timesteps)
        if self.input_perturbation:
            # DDPM-IP: x_t with eps + gamma * xi in place of eps; the
            # targets below keep eps.
            extra_noises = draw_for_global_batch(
                keras.random.normal, ops.shape(images), seed=self.seed_generator)
            noisy_images = (noisy_images
                            + self.input_perturbation * noise_rates * extra_noises)
        outputs = self.run_network(noisy_images, self.network_times(timesteps),
                                   labels, training=training)
        # Under a mixed dtype policy (say `mixed_bfloat16`) the network
        # returns its compute dtype; the loss stays in float32.
        outputs = ops.cast(outputs, noises.dtype)
        if self.prediction == "epsilon":
            targets = noises
        else:
            targets = signal_rates * noises - noise_rates * images
        squared_errors = ops.square(outputs - targets)
        if self.loss_weighting != "uniform":
            snr = self.schedule.snr(timesteps)
            # min(SNR, gamma) / SNR on the noise's error; the v error is the
            # noise's over signal_rate, hence SNR + 1 (Hang et al., 2023).
            denominator = snr if self.prediction == "epsilon" else snr + 1.0
            weights = ops.minimum(snr, self.min_snr_gamma)
            if self.loss_weighting == "min_snr_plus_one":
                weights = weights + 1.0  # min(SNR + 1, gamma + 1)
            weights = weights / denominator
            squared_errors = ops.reshape(weights, (-1, 1, 1, 1)) * squared_errors
        return scale_loss_for_replicas(ops.mean(squared_errors))

    def make_sampler(self, sampler=None, num_steps=None, eta=0.0,
                     pred_noise_scale=None):
        """Returns a DDPM, DDIM or DPM-Solver++(2M) sampler for this model's
        schedule (`"dpm-sde"`: the solver of the reverse SDE).

        `sampler=None` means `default_sampler`; `num_steps=None`
        means T for DDPM, 50 for DDIM and 10 for the solvers. `eta` is
        DDIM's; DDPM ignores it and the solvers refuse a nonzero one.
        Every sampler multiplies the noise predictions by
        `pred_noise_scale`; `None` means the model's own.
        """
        sampler = self.default_sampler if sampler is None else sampler
        if pred_noise_scale is None:
            pred_noise_scale = self.pred_noise_scale
        settings = {"clip_sample": self.clip_sample,
                    "pred_noise_scale": pred_noise_scale}
        if sampler == "ddpm":
            return DDPMSampler(self.schedule, num_steps, **settings)
        if sampler == "ddim":
            return DDIMSampler(self.schedule, 50 if num_steps is None else num_steps,
                               eta, **settings)
        if sampler in ("dpm", "dpm-sde"):
            if eta:
                raise ValueError(
                    f"`eta` (DDIM's noise) does not apply to the {sampler} "
                    "sampler: choose the ddim sampler to set it, or dpm-sde "
                    f"for a solver that adds noise. Got eta={eta}"
                )
            return DPMSolverSampler(self.schedule, num_steps,
                                    stochastic=sampler == "dpm-sde", **settings)
        raise self._unknown_sampler(
            sampler, "euler and heun sample rectified flows"
        )

    def get_config(self):
        config = super().get_config()
        config["schedule"] = keras.saving.serialize_keras_object(self.schedule)
        config["loss_weighting"] = self.loss_weighting
        config["min_snr_gamma"] = self.min_snr_gamma
        config["prediction"] = self.prediction
        config["pred_noise_scale"] = self.pred_noise_scale
        config["input_perturbation"] = self.input_perturbation
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return super().from_config(config)
