"""Default models and training settings for each `kd train` kind.

A recipe names a model builder and the settings that `kd train KIND` uses
when a flag is not given. The figures in `docs/` come from these recipes.
"""

import keras

from keras_diffusion.models import DDPM
from keras_diffusion.networks import UNet

RECIPES = {
    "ddpm": {
        "network": {
            "widths": (16, 32, 64),
            "blocks_per_level": 1,
            "attention_levels": (2,),
            "embedding_dim": 128,
        },
        "schedule": "linear",
        "learning_rate": 1e-3,
        "ema_momentum": 0.995,
        "batch_size": 128,
        "max_steps": 5000,
    },
    "cfg": {
        "network": {
            "widths": (16, 32, 64),
            "blocks_per_level": 1,
            "attention_levels": (2,),
            "embedding_dim": 128,
            "num_classes": 10,
            "class_input_channel": True,
            "class_cross_attention": True,
        },
        "schedule": "linear",
        "cond_drop_prob": 0.1,
        "learning_rate": 1e-3,
        "ema_momentum": 0.995,
        "batch_size": 128,
        "max_steps": 5000,
    },
}


def is_conditional(kind):
    return get_recipe(kind)["network"].get("num_classes") is not None


def get_recipe(kind):
    if kind not in RECIPES:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of {sorted(RECIPES)}.")
    return RECIPES[kind]


def build_model(kind, seed=None, learning_rate=None, compile=True):
    """Builds (and compiles) the default model of a recipe."""
    recipe = get_recipe(kind)
    network = UNet(image_shape=(28, 28, 1), **recipe["network"])
    model = DDPM(network, schedule=recipe["schedule"], seed=seed,
                 cond_drop_prob=recipe.get("cond_drop_prob", 0.1), name=kind)
    if compile:
        model.compile(
            optimizer=keras.optimizers.AdamW(
                learning_rate or recipe["learning_rate"],
                weight_decay=1e-4,
                use_ema=True,
                ema_momentum=recipe["ema_momentum"],
            )
        )
    return model
