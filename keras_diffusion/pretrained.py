"""Models by name, path or handle: the presets shipped in `keras_diffusion/weights/`."""

import os
import zipfile

import keras

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")

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
    "rf-latent": ("rf-latent", "latent rectified flow, Flow-1 (kd train rf-latent)"),
    "reflow-latent": (
        "reflow-latent",
        "latent reflow, Flow-2 of rf-latent (kd train reflow --from rf-latent)",
    ),
    "evaluator": (
        "evaluator", "MNIST classifier that scores samples (kd train evaluator)"
    ),
    "classifier": (
        "classifier",
        "noisy-image classifier for classifier guidance (kd train classifier)",
    ),
}


class ModelFileError(ValueError):
    """A model could not be loaded; the message says why."""


def shipped_preset_dir(name):
    """The packaged preset directory of the shipped model `name`."""
    return os.path.join(WEIGHTS_DIR, PRETRAINED[name][0])


def available_models():
    """Names of shipped models whose presets are present in this install."""
    from keras_diffusion.presets import is_preset_dir

    return [name for name in PRETRAINED if is_preset_dir(shipped_preset_dir(name))]


def resolve_model_path(name_or_path):
    """The local path that `load_model` reads for `name_or_path`.

    A shipped name gives its packaged preset directory; an `hf://` or
    `kaggle://` handle is downloaded (or found in the hub client's cache)
    and gives the downloaded directory; a path is checked and returned.
    """
    from keras_diffusion.presets import download_preset
    from keras_diffusion.presets import is_hub_handle
    from keras_diffusion.presets import is_preset_dir

    name_or_path = os.fspath(name_or_path)
    if name_or_path in PRETRAINED:
        path = shipped_preset_dir(name_or_path)
        if not is_preset_dir(path):
            raise ModelFileError(
                f"Shipped weights {name_or_path!r} are missing from this install "
                f"({path}); reinstall keras-diffusion."
            )
        return path
    if is_hub_handle(name_or_path):
        return download_preset(name_or_path)
    looks_like_path = (os.sep in name_or_path or name_or_path.endswith(".keras")
                       or os.path.exists(name_or_path))
    if not looks_like_path:
        raise ModelFileError(
            f"Unknown model {name_or_path!r}. Shipped models: "
            f"{', '.join(available_models()) or 'none'}; or pass a .keras path, "
            "a preset directory or an hf:// or kaggle:// handle."
        )
    if not os.path.exists(name_or_path):
        raise ModelFileError(f"Model file {name_or_path!r} does not exist.")
    return name_or_path


def load_model(name_or_path, expected_type=None):
    """Loads a model by shipped name, `.keras` file, preset directory or hub handle.

    Args:
        name_or_path: a name from `available_models()` (a preset shipped in
            the package), a `.keras` file, a preset directory (as
            `save_to_preset` writes it), or a handle `hf://OWNER/NAME` or
            `kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]` (needs
            `pip install "keras-diffusion[hub]"`).
        expected_type: optional class (or tuple); a model of another kind
            raises `ModelFileError`.

    Returns:
        The model, uncompiled.

    Example:
    >>> model = load_model("cfg")
    >>> model = load_model("runs/cfg/preset")
    >>> model = load_model("hf://someone/kd-cfg", expected_type=DDPM)
    """
    import keras_diffusion  # noqa: F401  (registers the serializable classes)
    from keras_diffusion.presets import check_type
    from keras_diffusion.presets import is_hub_handle
    from keras_diffusion.presets import is_preset_dir
    from keras_diffusion.presets import load_preset

    name_or_path = os.fspath(name_or_path)
    if is_hub_handle(name_or_path):
        return load_preset(name_or_path, expected_type)
    path = resolve_model_path(name_or_path)
    if os.path.isdir(path):
        if not is_preset_dir(path):
            raise ModelFileError(
                f"{path!r} is a directory but not a preset (it has no "
                f"config.json); pass a .keras model file, a preset directory "
                f"or a shipped name ({', '.join(available_models()) or 'none'})."
            )
        return load_preset(path, expected_type, name=name_or_path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path!r} is not a .keras model file (corrupt or truncated), nor "
            "a preset directory."
        )
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:
        message = str(error).strip().splitlines()[0][:300] if str(error) else ""
        raise ModelFileError(
            f"Could not load {path!r} ({type(error).__name__}: {message}); "
            "the file is corrupt or was not saved by keras_diffusion."
        ) from None
    check_type(model, expected_type, path)
    return model


def save_for_shipping(model, path):
    """Saves `model` as a `.keras` file without its optimizer (a third of the size)."""
    from keras_diffusion.utils.io import atomic_path

    bare = type(model).from_config(model.get_config())
    bare.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        bare.save(tmp)
    return path
