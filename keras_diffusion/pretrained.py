"""Models by name: the weights shipped in `keras_diffusion/weights/`."""

import os
import zipfile

import keras

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")

# name -> (file in WEIGHTS_DIR, one-line description)
PRETRAINED = {
    "cfg": ("cfg.keras", "latent DDPM, class-conditional with guidance (kd train cfg)"),
    "ddpm": ("ddpm.keras", "pixel-space DDPM, unconditional (kd train ddpm)"),
    "vae": ("vae.keras", "VAE with a 7x7x4 latent (kd train vae)"),
    "ldm": ("ldm.keras", "latent DDPM, unconditional (kd train ldm)"),
    "rf-pixel": ("rf-pixel.keras", "pixel rectified flow, Flow-1 (kd train rf-pixel)"),
    "reflow-pixel": (
        "reflow-pixel.keras",
        "pixel reflow, Flow-2 of rf-pixel (kd train reflow --from rf-pixel)",
    ),
    "rf-latent": ("rf-latent.keras", "latent rectified flow, Flow-1 (kd train rf-latent)"),
    "reflow-latent": (
        "reflow-latent.keras",
        "latent reflow, Flow-2 of rf-latent (kd train reflow --from rf-latent)",
    ),
    "evaluator": (
        "evaluator.keras", "MNIST classifier that scores samples (kd train evaluator)"
    ),
    "classifier": (
        "classifier.keras",
        "noisy-image classifier for classifier guidance (kd train classifier)",
    ),
}


class ModelFileError(ValueError):
    """A model could not be loaded; the message says why."""


def available_models():
    """Names of shipped models whose weights are present in this install."""
    return [name for name, (filename, _) in PRETRAINED.items()
            if os.path.isfile(os.path.join(WEIGHTS_DIR, filename))]


def resolve_model_path(name_or_path):
    """A `.keras` path for a shipped model name, or the path itself."""
    name_or_path = os.fspath(name_or_path)
    if name_or_path in PRETRAINED:
        path = os.path.join(WEIGHTS_DIR, PRETRAINED[name_or_path][0])
        if not os.path.isfile(path):
            raise ModelFileError(
                f"Shipped weights {name_or_path!r} are missing from this install "
                f"({path}); reinstall keras-diffusion."
            )
        return path
    looks_like_path = os.sep in name_or_path or name_or_path.endswith(".keras")
    if not looks_like_path:
        raise ModelFileError(
            f"Unknown model {name_or_path!r}. Shipped models: "
            f"{', '.join(available_models()) or 'none'}; or pass a .keras path."
        )
    if os.path.isdir(name_or_path):
        raise ModelFileError(
            f"{name_or_path!r} is a directory; pass a .keras model file or a "
            f"shipped name ({', '.join(available_models()) or 'none'})."
        )
    if not os.path.isfile(name_or_path):
        raise ModelFileError(f"Model file {name_or_path!r} does not exist.")
    return name_or_path


def load_model(name_or_path, expected_type=None):
    """Loads a model by shipped name or `.keras` path, with clear errors.

    Args:
        name_or_path: a name from `available_models()` or a `.keras` path.
        expected_type: optional class (or tuple); a model of another kind
            raises `ModelFileError`.
    """
    import keras_diffusion  # noqa: F401  (registers the serializable classes)

    path = resolve_model_path(name_or_path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path!r} is not a .keras model file (corrupt or truncated)."
        )
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:
        message = str(error).strip().splitlines()[0][:300] if str(error) else ""
        raise ModelFileError(
            f"Could not load {path!r} ({type(error).__name__}: {message}); "
            "the file is corrupt or was not saved by keras_diffusion."
        ) from None
    if expected_type is not None and not isinstance(model, expected_type):
        names = getattr(expected_type, "__name__", None) or "/".join(
            t.__name__ for t in expected_type
        )
        raise ModelFileError(
            f"{path!r} holds a {type(model).__name__}, but this needs a {names}."
        )
    return model


def save_for_shipping(model, path):
    """Saves `model` without its optimizer (about a third of the size)."""
    from keras_diffusion.utils.io import atomic_path

    bare = type(model).from_config(model.get_config())
    bare.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        bare.save(tmp)
    return path
