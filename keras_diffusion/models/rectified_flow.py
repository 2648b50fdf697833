import math

import keras
from keras import ops

from keras_diffusion.models.generative_model import GenerativeModel
from keras_diffusion.models.generative_model import unpack_batch
from keras_diffusion.samplers import EulerSampler
from keras_diffusion.samplers import HeunSampler
from keras_diffusion.utils.checks import check_choice
from keras_diffusion.utils.checks import check_positive
from keras_diffusion.utils.checks import check_share
from keras_diffusion.utils.replicas import draw_for_global_batch
from keras_diffusion.utils.replicas import scale_loss_for_replicas

SAMPLERS = {"euler": EulerSampler, "heun": HeunSampler}
TIME_SAMPLINGS = ("uniform", "logit_normal", "u_shaped", "zero")
# The steepness `a` of the "u_shaped" time density, cosh(a * (t - 1/2)).
U_SHAPE_STEEPNESS = 4.0
VELOCITY_LOSSES = ("mse", "pseudo_huber")
# Pseudo-Huber's `c` for a sample of `d` numbers is this times `d` (the
# released code of Lee et al., 2024).
PSEUDO_HUBER_C_PER_DIM = 0.00054
PAIR_KEYS = ("noise", "images", "labels")


@keras.saving.register_keras_serializable(package="keras_diffusion")
class RectifiedFlow(GenerativeModel):
    """Rectified flow: a network trained to predict the straight-line velocity
    from noise to data (Liu et al., 2023, "Flow Straight and Fast").

    Time runs from noise to data. For each image `x1` draw noise
    `x0 ~ N(0, I)` and a time `t` in [0, 1], form the point on the straight
    line `x_t = t * x1 + (1 - t) * x0`, and minimize
    `mean((network(x_t, t) - (x1 - x0)) ** 2)`. Sampling integrates
    `dx/dt = network(x, t)` from noise at `t = 0` to an image at `t = 1`
    with `EulerSampler` or `HeunSampler`.

    | code                   | paper (Liu et al., 2023)     |
    | ---------------------- | ---------------------------- |
    | `noise`                | X_0 ~ pi_0 = N(0, I)         |
    | `images`               | X_1 ~ pi_1 (the data)        |
    | `times`                | t                            |
    | `interpolate(...)`     | X_t = t X_1 + (1 - t) X_0    |
    | `velocity_target(...)` | X_1 - X_0                    |
    | `predict_velocity`     | v(X_t, t)                    |

    Reflow: `model.fit({"noise": x0, "images": x1})` trains on given
    (noise, image) pairs instead of drawing fresh noise, such as the pairs
    that `keras_diffusion.app.reflow_pairs.generate_pairs` draws from a trained flow
    (the coupling `(Z_0, Z_1)` of the paper); a flow trained on them
    (Flow-2, "2-rectified flow") has straighter paths and samples well in
    fewer steps. The dict may also hold `"labels"`.

    Class conditioning is as for `DDPM`: a conditional network trains on
    `model.fit(images, labels)` with condition dropout, and sampling uses
    classifier-free guidance on the velocity,
    `v = v_uncond + guidance * (v_cond - v_uncond)`.

    Args:
        network: a `keras.Model` taking `{"noisy_images", "times"}` (times
            in [0, 1]; plus `"labels"` if conditional) and returning an
            image-shaped velocity, such as `keras_diffusion.networks.UNet`.
        time_sampling: `"uniform"` (t ~ U[0, 1], the paper's) or
            `"logit_normal"` (t = sigmoid(n), n ~ N(0, 1), which trains the
            middle times more; Esser et al., 2024), `"u_shaped"` (density
            proportional to cosh(4 (t - 1/2)), which trains both ends more,
            where a few-step sampler evaluates; Lee et al., 2024, for
            reflow), or `"zero"` (t = 0
            always: trains only the one-step map `x1 = x0 + v(x0, 0)`, the
            paper's distillation of a flow into a one-step student, for
            pairs from `generate_pairs`; such a model samples in one step).
        zero_time_share: float in [0, 1], the share of each batch trained at
            t = 0 exactly, whatever `time_sampling` draws for the rest: the
            one time that every few-step sample starts from, and the whole
            of a one-step sample (docs/rectified_flow.md#flow-2-trained-at-t--0-too).
        velocity_loss: `"mse"` (the mean squared error, the paper's) or
            `"pseudo_huber"` (per sample, `sqrt(|e|^2 + c^2) - c` over its
            `d` numbers, divided by `d`, with `c = 0.00054 d`: close to the
            error's norm, so that a few large errors weigh less than under
            the square; Lee et al., 2024, for reflow).
        seed: int or None, seeds the training noise and times.
        cond_drop_prob: float in [0, 1], the rate of condition dropout.
        sampling_shift: float > 0, the time grid's shift for the Euler and
            Heun samplers (`EulerSampler`'s `shift`): 1 is equal steps; the
            default 3 takes shorter steps near the noise, as SD3 does, which
            lowers the FID of few-step samples
            (docs/rectified_flow.md#the-time-grid). Sampling only: training
            does not read it, so it can be changed on a trained model.
        **kwargs: standard `keras.Model` arguments.

    Call arguments (of `fit`):
        x: images in [-1, 1]; or `(images, labels)`; or a dict of reflow
            pairs `{"noise": x0, "images": x1}` (optionally `"labels"`).
        y: labels, for a class-conditional network.

    Example:
    >>> model = RectifiedFlow(UNet(widths=(16, 32)))
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    >>> model.fit(images, batch_size=64, epochs=1)  # images in [-1, 1]
    >>> samples = model.generate(16, sampler="euler", num_steps=16)
    """

    sampler_names = tuple(SAMPLERS)
    default_sampler = "euler"

    def __init__(self, network, time_sampling="uniform", seed=None,
                 cond_drop_prob=0.1, sampling_shift=3.0, velocity_loss="mse",
                 zero_time_share=0.0, **kwargs):
        super().__init__(network, seed=seed, cond_drop_prob=cond_drop_prob,
                         **kwargs)
        self.time_sampling = check_choice("time_sampling", time_sampling,
                                          TIME_SAMPLINGS)
        self.velocity_loss = check_choice("velocity_loss", velocity_loss,
                                          VELOCITY_LOSSES)
        self.sampling_shift = check_positive("sampling_shift", sampling_shift)
        self.zero_time_share = check_share("zero_time_share", zero_time_share)

    def network_times(self, times):
        """Flow times are the network's times (floats in [0, 1])."""
        return ops.cast(times, "float32")

    @staticmethod
    def interpolate(noise, images, times):
        """`x_t = t * images + (1 - t) * noise`, with one time per sample."""
        images = ops.convert_to_tensor(images)
        times = ops.reshape(ops.cast(times, images.dtype),
                            (-1,) + (1,) * (len(images.shape) - 1))
        return times * images + (1.0 - times) * ops.cast(noise, images.dtype)

    @staticmethod
    def velocity_target(noise, images):
        """The straight line's velocity, `images - noise`."""
        images = ops.convert_to_tensor(images)
        return images - ops.cast(noise, images.dtype)

    def sample_times(self, batch_size):
        """Training times in [0, 1]: `zero_time_share` of them 0, the others
        drawn as `time_sampling` says."""
        times = self._draw_times(batch_size)
        if self.zero_time_share == 0.0:
            return times
        coins = draw_for_global_batch(keras.random.uniform, (batch_size,),
                                      seed=self.seed_generator)
        return ops.where(coins < self.zero_time_share, 0.0, times)

    def _draw_times(self, batch_size):
        # Drawn for the global batch under tf.distribute (see
        # `draw_for_global_batch`), so replicas never share times.
        if self.time_sampling == "logit_normal":
            return ops.sigmoid(draw_for_global_batch(
                keras.random.normal, (batch_size,), seed=self.seed_generator
            ))
        if self.time_sampling == "zero":
            return ops.zeros((batch_size,))
        uniform = draw_for_global_batch(keras.random.uniform, (batch_size,),
                                        seed=self.seed_generator)
        if self.time_sampling == "u_shaped":
            # Inverse CDF of the density proportional to cosh(a (t - 1/2)).
            half_width = math.sinh(U_SHAPE_STEEPNESS / 2)
            return 0.5 + ops.arcsinh((2.0 * uniform - 1.0) * half_width) / (
                U_SHAPE_STEEPNESS)
        return uniform

    def predict_velocity(self, samples, times, labels=None, training=False):
        """The network's velocity at float `times` in [0, 1].

        For a conditional network, `labels=None` means the null class.
        """
        return self.run_network(samples, times, labels, training=training)

    def guided_velocity(self, samples, times, labels, guidance):
        """Classifier-free guidance: `uncond + guidance * (cond - uncond)`."""
        return self.guided_output(samples, times, labels, guidance)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        images, labels, noise = unpack_pairs(x, y)
        labels = self.training_labels(labels)
        times = self.sample_times(ops.shape(images)[0])
        if noise is None:
            noise = draw_for_global_batch(keras.random.normal, ops.shape(images),
                                          seed=self.seed_generator)
        pred_velocity = self.predict_velocity(
            self.interpolate(noise, images, times), times, labels, training=training
        )
        # Under a mixed dtype policy the network returns its compute dtype;
        # the loss stays in float32.
        pred_velocity = ops.cast(pred_velocity, noise.dtype)
        return scale_loss_for_replicas(self.velocity_distance(
            pred_velocity - self.velocity_target(noise, images)))

    def velocity_distance(self, errors):
        """The batch's loss from its velocity errors, as `velocity_loss`
        says."""
        if self.velocity_loss == "mse":
            return ops.mean(ops.square(errors))
        size = math.prod(errors.shape[1:])
        c = PSEUDO_HUBER_C_PER_DIM * size
        squared_norms = ops.sum(ops.square(errors),
                                axis=tuple(range(1, len(errors.shape))))
        return ops.mean(ops.sqrt(squared_norms + c ** 2) - c) / size

    def make_sampler(self, sampler=None, num_steps=None, eta=0.0,
                     pred_noise_scale=None):
        """Returns an Euler or Heun sampler.

        `sampler=None` means `"euler"`; `num_steps=None` means 16 for Euler
        and 8 for Heun (the same 16 network evaluations), and one step for
        a one-step student (`time_sampling="zero"`); the time grid is
        shifted by `sampling_shift`. A flow predicts velocities, so it
        takes no `pred_noise_scale`.
        """
        if pred_noise_scale is not None:
            raise ValueError(
                "`pred_noise_scale` scales a diffusion model's noise "
                "predictions; a flow predicts velocities. Leave it None. "
                f"Got pred_noise_scale={pred_noise_scale}"
            )
        sampler = self.default_sampler if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise self._unknown_sampler(
                sampler, "ddpm, ddim and dpm sample diffusion models"
            )
        if eta:
            raise ValueError(
                f"`eta` (DDIM's noise) does not apply to the {sampler} sampler "
                f"of a flow, which is deterministic. Got eta={eta}"
            )
        if num_steps is None and self.time_sampling == "zero":
            num_steps = 1
        return SAMPLERS[sampler](num_steps, shift=self.sampling_shift)

    def get_config(self):
        config = super().get_config()
        config["time_sampling"] = self.time_sampling
        config["velocity_loss"] = self.velocity_loss
        config["sampling_shift"] = self.sampling_shift
        config["zero_time_share"] = self.zero_time_share
        return config


def unpack_pairs(x, y):
    """(images, labels, noise) of a training batch; `noise` is `None`
    unless the batch is a dict of reflow pairs (see `RectifiedFlow`)."""
    if not isinstance(x, dict):
        return unpack_batch(x, y) + (None,)
    unknown = sorted(set(x) - set(PAIR_KEYS))
    if unknown or "noise" not in x or "images" not in x:
        raise ValueError(
            "Reflow pairs are a dict with keys 'noise' and 'images' (and "
            f"optionally 'labels'). Got keys {sorted(x)}."
        )
    noise, images = x["noise"], x["images"]
    if tuple(noise.shape[1:]) != tuple(images.shape[1:]):
        raise ValueError(
            f"Reflow pairs need noise shaped like the images. Got noise "
            f"{tuple(noise.shape)} and images {tuple(images.shape)}."
        )
    return images, x.get("labels", y), noise
