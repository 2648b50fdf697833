"""The models shipped in the package, as preset directories in `weights/`."""

import os

from keras_diffusion.presets.preset_dir import is_preset_dir

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "weights")

# name -> (preset directory in WEIGHTS_DIR, one-line description)
PRETRAINED = {
    "cfg": ("cfg", "latent DDPM, class-conditional with guidance (kd train cfg)"),
    "ddpm": ("ddpm", "pixel-space DDPM, unconditional (kd train ddpm)"),
    "vae": ("vae", "VAE with a 7x7x4 latent (kd train vae)"),
    "ldm": ("ldm", "latent DDPM, unconditional (kd train ldm)"),
    "rf-pixel": ("rf-pixel", "pixel rectified flow, Flow-1 (kd train rf-pixel)"),
    "reflow-pixel": (
        "reflow-pixel",
        "pixel reflow, Flow-2 of rf-pixel (kd train reflow --from rf-pixel)",
    ),
    "distill-pixel": (
        "distill-pixel",
        "pixel one-step student of reflow-pixel (kd train distill --from "
        "reflow-pixel)",
    ),
    "rf-latent": ("rf-latent", "latent rectified flow, Flow-1 (kd train rf-latent)"),
    "reflow-latent": (
        "reflow-latent",
        "latent reflow, Flow-2 of rf-latent (kd train reflow --from rf-latent)",
    ),
    "distill-latent": (
        "distill-latent",
        "latent one-step student of reflow-latent (kd train distill --from "
        "reflow-latent)",
    ),
    "evaluator": (
        "evaluator", "MNIST classifier that scores samples (kd train evaluator)"
    ),
    "classifier": (
        "classifier",
        "noisy-image classifier for classifier guidance (kd train classifier)",
    ),
    "fashion-cfg": (
        "fashion-cfg",
        "Fashion-MNIST latent DDPM, class-conditional with guidance (kd train "
        "cfg --data FASHION)",
    ),
    "fashion-evaluator": (
        "fashion-evaluator",
        "Fashion-MNIST classifier that scores fashion-cfg's samples (kd train "
        "evaluator --data FASHION)",
    ),
}


def shipped_preset_dir(name):
    """The packaged preset directory of the shipped model `name`."""
    return os.path.join(WEIGHTS_DIR, PRETRAINED[name][0])


def available_models():
    """Names of shipped models whose presets are present in this install."""
    return [name for name in PRETRAINED if is_preset_dir(shipped_preset_dir(name))]

