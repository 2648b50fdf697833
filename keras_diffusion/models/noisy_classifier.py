import keras
import numpy as np
from keras import ops

from keras_diffusion.models.generative_model import unpack_batch
from keras_diffusion.models.trainable_model import TrainableModel
from keras_diffusion.schedules import as_schedule
from keras_diffusion.utils.replicas import draw_for_global_batch
from keras_diffusion.utils.replicas import scale_loss_for_replicas


@keras.saving.register_keras_serializable(package="keras_diffusion")
class NoisyClassifier(TrainableModel):
    """A classifier of noisy images `x_t`, for classifier guidance.

    Training noises each clean image exactly as `DDPM` does: draw a
    timestep `t ~ U{0, T-1}` and noise `eps ~ N(0, I)`, form
    `x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps`, and
    minimize the softmax cross-entropy of `network(x_t, t / T)` against the
    image's class. With `max_shift`, each clean image is first moved by its
    own random whole-pixel offset (up to `max_shift` each way, the border
    mirrored into the gap), as the evaluator's training images are. The
    classifier then knows `p(y | x_t, t)` at every noise level a sampler
    visits, and `grad_x log p(y | x_t, t)` steers an
    unconditional DDPM toward class `y` (Dhariwal & Nichol, 2021; see
    `keras_diffusion.guidance.classifier_log_prob_gradient`). Use the
    diffusion model's schedule (the default, linear with T = 1000, is
    `kd train ddpm`'s).

    The loss lives in `compute_loss`, so every backend's own `train_step`
    computes gradients and `model.fit(images, labels)` just works; `call()`
    returns its inputs so the network runs once per step. The timesteps and
    the noise come from a `keras.random.SeedGenerator` attached to the
    model. `logits(noisy_images, timesteps)` classifies.

    Args:
        network: a `keras.Model` taking `{"noisy_images", "times"}` (times
            in [0, 1]) and returning logits, such as
            `keras_diffusion.networks.TimeConditionedClassifier`.
        schedule: a `NoiseSchedule`, or `"linear"` / `"cosine"`.
        seed: int or None, seeds the training timesteps and noise.
        max_shift: int, the largest random shift, in pixels, of a training
            image (0: none).
        **kwargs: standard `keras.Model` arguments.

    Example:
    >>> classifier = NoisyClassifier(TimeConditionedClassifier())
    >>> classifier.compile(optimizer="adam")
    >>> classifier.fit(images, labels, batch_size=128, epochs=5)  # images in [-1, 1]
    >>> classifier.logits(noisy_images, timesteps).shape
    (N, 10)
    """

    def __init__(self, network, schedule="linear", seed=None, max_shift=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.schedule = as_schedule(schedule)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.image_shape = tuple(network.input["noisy_images"].shape[1:])
        if (int(max_shift) != max_shift or not
                0 <= max_shift < min(self.image_shape[:2])):
            raise ValueError(
                f"`max_shift` must be a whole number of pixels from 0 to one "
                f"less than the image size {self.image_shape[:2]}. Got "
                f"{max_shift!r}")
        self.max_shift = int(max_shift)
        self.num_classes = int(network.output.shape[-1])
        self.built = True

    def call(self, inputs, training=False):
        # The network runs inside `compute_loss`; see the class docstring.
        return inputs

    def logits(self, noisy_images, timesteps, training=False):
        """Class logits of `noisy_images` at integer `timesteps` (0 .. T-1).

        Args:
            noisy_images: tensor `(batch,) + image_shape`.
            timesteps: int scalar or `(batch,)`, broadcast to the batch.
            training: bool, passed to the network.
        """
        noisy_images = ops.convert_to_tensor(noisy_images)
        batch_size = ops.shape(noisy_images)[0]
        times = ops.cast(timesteps, "float32") / self.schedule.num_timesteps
        times = ops.broadcast_to(times, (batch_size,))
        return self.network({"noisy_images": noisy_images, "times": times},
                            training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        images, labels = unpack_batch(x, y)
        if labels is None:
            raise ValueError("A NoisyClassifier trains on labelled images: "
                             "`model.fit(images, labels)`.")
        if self.max_shift:
            images = random_shifts(images, self.max_shift, self.seed_generator)
        # Drawn for the global batch under tf.distribute, as DDPM draws them,
        # so replicas never share noise.
        noisy_images, _, timesteps = self.schedule.noisy_training_batch(
            images, self.seed_generator)
        logits = self.logits(noisy_images, timesteps, training=training)
        losses = keras.losses.sparse_categorical_crossentropy(
            ops.reshape(labels, (-1,)), logits, from_logits=True
        )
        return scale_loss_for_replicas(ops.mean(losses))

    def accuracy(self, images, labels, timesteps, seed=0, batch_size=500):
        """Accuracy on `images` noised to each of `timesteps`.

        The noise comes from `numpy.random.default_rng(seed)` (one draw per
        image, reused at every timestep), so the figures are the same under
        every backend.

        Args:
            images: float array `(N,) + image_shape`, clean images in [-1, 1].
            labels: int array `(N,)`.
            timesteps: iterable of ints in 0 .. T-1.
            seed: int, seeds the noise.
            batch_size: int, images per forward pass.

        Returns:
            A list of floats, the accuracy at each timestep.
        """
        images = np.asarray(images, "float32")
        labels = np.asarray(labels).reshape(-1)
        if images.shape[1:] != self.image_shape or len(images) != len(labels):
            raise ValueError(
                f"`images` must have shape (N,) + {self.image_shape} with one "
                f"label each. Got images {images.shape}, labels {labels.shape}"
            )
        total = self.schedule.num_timesteps
        timesteps = [int(t) for t in timesteps]
        if not timesteps or min(timesteps) < 0 or max(timesteps) >= total:
            raise ValueError(f"`timesteps` must be ints in 0-{total - 1}. "
                             f"Got {timesteps}")
        noises = np.random.default_rng(seed).standard_normal(images.shape)
        alpha_bars = self.schedule.alphas_cumprod
        accuracies = []
        for t in timesteps:
            noisy = (np.sqrt(alpha_bars[t]) * images
                     + np.sqrt(1.0 - alpha_bars[t]) * noises).astype("float32")
            correct = 0
            for start in range(0, len(noisy), batch_size):
                batch = noisy[start : start + batch_size]
                logits = ops.convert_to_numpy(self.logits(batch, t))
                correct += int(np.sum(np.argmax(logits, axis=-1)
                                      == labels[start : start + batch_size]))
            accuracies.append(correct / len(images))
        return accuracies

    def get_config(self):
        config = super().get_config()
        config.update({
            "network": keras.saving.serialize_keras_object(self.network),
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "seed": self.seed,
            "max_shift": self.max_shift,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def random_shifts(images, max_shift, seed):
    """Each image moved by its own random offset of whole pixels.

    The offsets are drawn uniformly from `-max_shift .. max_shift` along
    each axis; the gap is filled by mirroring the image's border (for
    MNIST, the background).

    Args:
        images: float tensor `(batch, height, width, channels)`.
        max_shift: int >= 1, the largest shift in pixels.
        seed: a `keras.random.SeedGenerator` (or an int).

    Returns:
        A tensor shaped like `images`.
    """
    height, width, channels = images.shape[1:]
    batch_size = ops.shape(images)[0]
    padding = [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]]
    padded = ops.pad(images, padding, mode="symmetric")
    # Drawn for the global batch, as the noise is, so that replicas under
    # tf.distribute do not share offsets.
    offsets = draw_for_global_batch(keras.random.randint, (batch_size, 2),
                                    minval=0, maxval=2 * max_shift + 1, seed=seed)
    rows = ops.arange(height)[None, :] + offsets[:, :1]  # (batch, height)
    columns = ops.arange(width)[None, :] + offsets[:, 1:]  # (batch, width)
    rows = ops.broadcast_to(rows[:, :, None, None],
                            (batch_size, height, width + 2 * max_shift, channels))
    shifted = ops.take_along_axis(padded, rows, axis=1)
    columns = ops.broadcast_to(columns[:, None, :, None],
                               (batch_size, height, width, channels))
    return ops.take_along_axis(shifted, columns, axis=2)
