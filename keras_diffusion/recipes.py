"""Default models and training settings for each `kd train` kind.

A recipe names the model type, its network settings, and the training
settings that `kd train KIND` uses when a flag is not given. The figures in
`docs/` come from these recipes.
"""

import keras

from keras_diffusion.models import DDPM
from keras_diffusion.models import VAE
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.models import LatentRectifiedFlow
from keras_diffusion.models import NoisyClassifier
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.networks import TimeConditionedClassifier
from keras_diffusion.networks import UNet
from keras_diffusion.networks import VAEDecoder
from keras_diffusion.networks import VAEEncoder

_PIXEL_UNET = {
    "image_shape": (28, 28, 1),
    "widths": (16, 32, 64),
    "blocks_per_level": 1,
    "attention_levels": (2,),
    "embedding_dim": 128,
}
_LATENT_UNET = {
    "image_shape": (7, 7, 4),
    "widths": (64,),
    "blocks_per_level": 2,
    "attention_levels": (0,),
    "embedding_dim": 128,
}
_TRAINING = {"learning_rate": 1e-3, "ema_momentum": 0.995, "batch_size": 128,
             "max_steps": 3000}

RECIPES = {
    # Pixel-space DDPM, unconditional.
    "ddpm": {"model": "ddpm", "network": _PIXEL_UNET, "schedule": "linear",
             **_TRAINING},
    # VAE with a 7x7x4 latent, for the latent models.
    "vae": {"model": "vae", "latent_channels": 4, "kl_weight": 1e-3,
            "learning_rate": 2e-3, "batch_size": 128, "max_steps": 1500},
    # DDPM on the VAE's latents, unconditional.
    "ldm": {"model": "latent", "network": _LATENT_UNET, "schedule": "linear",
            **_TRAINING},
    # DDPM on the VAE's latents, class-conditional (input channel and
    # cross-attention), trained with condition dropout for guidance.
    "cfg": {"model": "latent", "schedule": "linear", "cond_drop_prob": 0.1,
            "network": dict(_LATENT_UNET, num_classes=10,
                            class_input_channel=True, class_cross_attention=True),
            **_TRAINING},
    # The two conditioning routes of "cfg" on their own, for comparing which
    # carries the class better (docs/guidance.md): the class as an input
    # channel only, and through cross-attention only.
    "cfg-channel": {"model": "latent", "schedule": "linear", "cond_drop_prob": 0.1,
                    "network": dict(_LATENT_UNET, num_classes=10,
                                    class_input_channel=True,
                                    class_cross_attention=False),
                    **_TRAINING},
    "cfg-xattn": {"model": "latent", "schedule": "linear", "cond_drop_prob": 0.1,
                  "network": dict(_LATENT_UNET, num_classes=10,
                                  class_input_channel=False,
                                  class_cross_attention=True),
                  **_TRAINING},
    # Rectified flow in pixel space (the "ddpm" UNet), unconditional.
    "rf-pixel": {"model": "flow", "network": _PIXEL_UNET,
                 "time_sampling": "uniform", **_TRAINING},
    # Rectified flow on the VAE's latents (the "ldm" UNet), unconditional.
    "rf-latent": {"model": "latent_flow", "network": _LATENT_UNET,
                  "time_sampling": "uniform", **_TRAINING},
    # Reflow: Flow-2 trained on (noise, image) pairs drawn from a trained
    # flow (`kd train reflow --from FLOW1`), starting from Flow-1's weights,
    # with Flow-1's architecture. `num_pairs` pairs, each integrated with
    # `pair_steps` Euler steps of Flow-1.
    "reflow": {"model": "reflow", "num_pairs": 20000, "pair_steps": 100,
               **_TRAINING},
    # Classifier of noisy images x_t at random t, with the "ddpm" schedule,
    # for classifier guidance of the unconditional DDPM. Trains on labels
    # (`num_classes` makes `is_conditional` true).
    "classifier": {"model": "classifier", "schedule": "linear",
                   "network": {"image_shape": (28, 28, 1), "widths": (16, 32, 64),
                               "embedding_dim": 64, "num_classes": 10},
                   "learning_rate": 2e-3, "batch_size": 128, "max_steps": 2000},
}

# The model class of each recipe "model" (the VAE and reflow are built apart).
_MODELS = {"ddpm": DDPM, "latent": LatentDiffusion, "flow": RectifiedFlow,
           "latent_flow": LatentRectifiedFlow}


def get_recipe(kind):
    if kind not in RECIPES:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of {sorted(RECIPES)}.")
    return RECIPES[kind]


def is_conditional(kind):
    return get_recipe(kind).get("network", {}).get("num_classes") is not None


def needs_vae(kind):
    return get_recipe(kind)["model"] in ("latent", "latent_flow")


def build_model(kind, seed=None, learning_rate=None, compile=True, vae=None,
                latent_scale=1.0):
    """Builds (and compiles) the default model of a recipe.

    Latent recipes need a trained `vae` and its `latent_scale`.
    """
    recipe = get_recipe(kind)
    if recipe["model"] == "vae":
        channels = recipe["latent_channels"]
        model = VAE(VAEEncoder(latent_channels=channels),
                    VAEDecoder(latent_shape=(7, 7, channels)),
                    kl_weight=recipe["kl_weight"], seed=seed, name=kind)
        optimizer = keras.optimizers.Adam(learning_rate or recipe["learning_rate"])
    elif recipe["model"] == "classifier":
        model = NoisyClassifier(TimeConditionedClassifier(**recipe["network"]),
                                schedule=recipe["schedule"], seed=seed, name=kind)
        optimizer = keras.optimizers.AdamW(learning_rate or recipe["learning_rate"],
                                           weight_decay=1e-4)
    elif recipe["model"] == "reflow":
        raise ValueError(
            "A reflow model starts from a trained flow: use "
            "`kd train reflow --from FLOW1` (`training.train_reflow`)."
        )
    else:
        network = UNet(**recipe["network"])
        common = dict(seed=seed, cond_drop_prob=recipe.get("cond_drop_prob", 0.1),
                      name=kind)
        for key in ("schedule", "time_sampling"):
            if key in recipe:
                common[key] = recipe[key]
        model_class = _MODELS[recipe["model"]]
        if needs_vae(kind):
            if vae is None:
                raise ValueError(f"Recipe {kind!r} needs a trained VAE.")
            model = model_class(network, vae, latent_scale, **common)
        else:
            model = model_class(network, **common)
        optimizer = make_optimizer(recipe, learning_rate)
    if compile:
        model.compile(optimizer=optimizer)
    return model


def make_optimizer(recipe, learning_rate=None):
    """AdamW with weight EMA, as the diffusion and flow recipes train."""
    return keras.optimizers.AdamW(
        learning_rate or recipe["learning_rate"], weight_decay=1e-4,
        use_ema=True, ema_momentum=recipe["ema_momentum"],
    )
