import keras

from keras_diffusion.models.ddpm import DDPM
from keras_diffusion.models.latent import LatentMixin


@keras.saving.register_keras_serializable(package="keras_diffusion")
class LatentDiffusion(LatentMixin, DDPM):
    """DDPM on the latents of a frozen VAE (Rombach et al., 2022).

    Training encodes each batch with the VAE (posterior mean), multiplies by
    `latent_scale` so the latents have about unit variance, and trains the
    DDPM noise prediction on them; `generate` denoises latents with the same
    samplers (without clipping) and decodes them. The VAE is stored inside
    the model, so one `.keras` file samples images. (The latent machinery is
    `keras_diffusion.models.latent.LatentMixin`, shared with
    `LatentRectifiedFlow`.)

    Args:
        network: a `UNet` whose `image_shape` is the VAE's latent shape.
        vae: a trained `VAE`; it is frozen.
        latent_scale: float, multiplies the latents; compute it with
            `LatentDiffusion.compute_latent_scale(vae, images)`.
        schedule, seed, cond_drop_prob: as for `DDPM`.
        **kwargs: standard `keras.Model` arguments.

    Example:
    >>> scale = LatentDiffusion.compute_latent_scale(vae, images)
    >>> model = LatentDiffusion(UNet((7, 7, 4), widths=(96,)), vae, scale)
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    >>> model.fit(images, epochs=10)                # images in [-1, 1]
    >>> digits = model.generate(16, sampler="ddim", num_steps=50)
    """

    def __init__(self, network, vae, latent_scale=1.0, schedule="linear", seed=None,
                 cond_drop_prob=0.1, **kwargs):
        super().__init__(network, vae, latent_scale, schedule=schedule, seed=seed,
                         cond_drop_prob=cond_drop_prob, **kwargs)
