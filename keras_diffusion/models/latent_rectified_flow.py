import keras

from keras_diffusion.models.latent import LatentMixin
from keras_diffusion.models.rectified_flow import RectifiedFlow


@keras.saving.register_keras_serializable(package="keras_diffusion")
class LatentRectifiedFlow(LatentMixin, RectifiedFlow):
    """Rectified flow on the latents of a frozen VAE.

    As `RectifiedFlow`, with x1 the VAE's latent mean of an image times
    `latent_scale` (about unit variance, like the noise x0); `generate`
    integrates latents with the same samplers and decodes them. The VAE is
    stored inside the model, so one `.keras` file samples images. Reflow
    pairs (`fit({"noise": x0, "images": x1})`) are in the scaled latent
    space, as `keras_diffusion.app.reflow_pairs.generate_pairs` writes them. The
    latent machinery (`keras_diffusion.models.latent.LatentMixin`) is
    shared with `LatentDiffusion`.

    Args:
        network: a `UNet` whose `image_shape` is the VAE's latent shape.
        vae: a trained `VAE`; it is frozen.
        latent_scale: float, multiplies the latents; compute it with
            `LatentRectifiedFlow.compute_latent_scale(vae, images)`.
        time_sampling, seed, cond_drop_prob: as for `RectifiedFlow`.
        **kwargs: standard `keras.Model` arguments.

    Example:
    >>> scale = LatentRectifiedFlow.compute_latent_scale(vae, images)
    >>> model = LatentRectifiedFlow(UNet((7, 7, 4), widths=(64,)), vae, scale)
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    >>> model.fit(images, epochs=10)                # images in [-1, 1]
    >>> digits = model.generate(16, sampler="euler", num_steps=16)
    """

    def __init__(self, network, vae, latent_scale=1.0, time_sampling="uniform",
                 seed=None, cond_drop_prob=0.1, **kwargs):
        super().__init__(network, vae, latent_scale, time_sampling=time_sampling,
                         seed=seed, cond_drop_prob=cond_drop_prob, **kwargs)
