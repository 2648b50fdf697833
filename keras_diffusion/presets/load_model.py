"""`load_model`: a model by shipped name, `.keras` file, preset directory or hub handle."""

import json
import os
import zipfile

from keras_diffusion.presets.build_for_loading import build_for_loading
from keras_diffusion.presets.build_for_loading import finish_loading
from keras_diffusion.presets.errors import ModelFileError
from keras_diffusion.presets.errors import check_type
from keras_diffusion.presets.errors import first_line
from keras_diffusion.presets.hub import download_preset
from keras_diffusion.presets.hub import is_hub_handle
from keras_diffusion.presets.preset_dir import is_preset_dir
from keras_diffusion.presets.preset_dir import load_preset
from keras_diffusion.presets.shipped import PRETRAINED
from keras_diffusion.presets.shipped import available_models
from keras_diffusion.presets.shipped import shipped_preset_dir

KERAS_CONFIG_FILE = "config.json"  # in a .keras archive


def resolve_model_path(name_or_path):
    """The local path that `load_model` reads for `name_or_path`.

    A shipped name gives its packaged preset directory; an `hf://` or
    `kaggle://` handle is downloaded (or found in the hub client's cache)
    and gives the downloaded directory; a path is checked and returned.
    """
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
        model = _load_keras_file(path)
    except Exception as error:
        raise ModelFileError(
            f"Could not load {path!r} ({type(error).__name__}: "
            f"{first_line(error)}); "
            "the file is corrupt or was not saved by keras_diffusion."
        ) from None
    check_type(model, expected_type, path)
    return model


def _load_keras_file(path):
    """The model in a `.keras` file, uncompiled, without its optimizer:
    as `keras.saving.load_model(path, compile=False)` loads it, but built
    with `build_for_loading` (fast under JAX)."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read(KERAS_CONFIG_FILE))
    config.pop("compile_config", None)
    model = build_for_loading(config)
    try:
        model.load_weights(path)
    finally:
        finish_loading()
    return model
