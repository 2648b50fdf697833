import keras
from keras import ops

from keras_diffusion.networks.vae_decoder import VAEDecoder
from keras_diffusion.networks.vae_encoder import VAEEncoder
from keras_diffusion.models.trainable_model import TrainableModel
from keras_diffusion.utils.replicas import draw_for_global_batch
from keras_diffusion.utils.replicas import scale_loss_for_replicas


@keras.saving.register_keras_serializable(package="keras_diffusion")
class VAE(TrainableModel):
    """Variational autoencoder with a spatial latent (Kingma & Welling, 2014).

    The encoder gives `mean` and `log_variance` of `q(z | x)`; training
    draws `z = mean + exp(log_variance / 2) * eps` (the reparameterization
    trick) and minimizes

        loss = reconstruction + kl_weight * kl

    where `reconstruction` is the per-pixel binary cross-entropy of the
    decoder's logits against the image in [0, 1], and `kl` is the per-element
    KL divergence of `q(z | x)` from `N(0, I)`:
    `-0.5 * mean(1 + log_variance - mean**2 - exp(log_variance))`.
    A small `kl_weight` keeps the latent detailed enough to decode well,
    while keeping it smooth enough for a diffusion model to learn.

    `model.fit(images)` trains it on any backend (the loss lives in
    `compute_loss`; `call()` returns its input). The noise comes from a
    `SeedGenerator` attached to the model.

    Args:
        encoder: a `VAEEncoder` (or a model with the same outputs).
        decoder: a `VAEDecoder`.
        kl_weight: float >= 0.
        seed: int or None.
        **kwargs: standard `keras.Model` arguments.

    Example:
    >>> vae = VAE(VAEEncoder(), VAEDecoder())
    >>> vae.compile(optimizer="adam")
    >>> vae.fit(images, epochs=5)                   # images in [-1, 1]
    >>> latents = vae.encode(images)                # (N, 7, 7, 4)
    >>> reconstructions = vae.decode(latents)       # in [-1, 1]
    """

    def __init__(self, encoder=None, decoder=None, kl_weight=1e-3, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        if kl_weight < 0:
            raise ValueError(f"`kl_weight` must be >= 0. Got {kl_weight}")
        self.encoder = encoder or VAEEncoder()
        self.decoder = decoder or VAEDecoder()
        self.kl_weight = kl_weight
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.latent_shape = tuple(self.decoder.input.shape[1:])
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl")
        self.built = True

    def call(self, inputs, training=False):
        # The networks run inside `compute_loss`; see the class docstring.
        return inputs

    def encode(self, images, sample=False):
        """Latents of `images` in [-1, 1]: the posterior mean, or a draw."""
        moments = self.encoder(images)
        if not sample:
            return moments["mean"]
        noise = keras.random.normal(ops.shape(moments["mean"]), seed=self.seed_generator)
        return moments["mean"] + ops.exp(0.5 * moments["log_variance"]) * noise

    def decode(self, latents):
        """Images in [-1, 1] from latents."""
        return 2.0 * ops.sigmoid(self.decoder(latents)) - 1.0

    def reconstruct(self, images):
        return self.decode(self.encode(images))

    @staticmethod
    def kl_divergence(mean, log_variance):
        """Per-element mean of KL(N(mean, exp(log_variance)) || N(0, 1))."""
        mean = ops.convert_to_tensor(mean)
        log_variance = ops.convert_to_tensor(log_variance)
        return -0.5 * ops.mean(1.0 + log_variance - ops.square(mean)
                               - ops.exp(log_variance))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        images = x[0] if isinstance(x, (tuple, list)) else x
        moments = self.encoder(images, training=training)
        mean, log_variance = moments["mean"], moments["log_variance"]
        noise = draw_for_global_batch(keras.random.normal, ops.shape(mean),
                                      seed=self.seed_generator)
        latents = mean + ops.exp(0.5 * log_variance) * noise
        logits = self.decoder(latents, training=training)
        targets = (images + 1.0) / 2.0
        reconstruction = ops.mean(
            ops.binary_crossentropy(targets, logits, from_logits=True)
        )
        kl = self.kl_divergence(mean, log_variance)
        self.reconstruction_loss_tracker.update_state(reconstruction)
        self.kl_loss_tracker.update_state(kl)
        return scale_loss_for_replicas(reconstruction + self.kl_weight * kl)

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "kl_weight": self.kl_weight,
            "seed": self.seed,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
