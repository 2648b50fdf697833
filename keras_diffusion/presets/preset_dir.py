"""A preset directory: a model in keras-hub's layout.

It holds three files:

- `config.json`: the model, serialized with
  `keras.saving.serialize_keras_object` (it carries `registered_name`, so
  loading needs no custom objects);
- `model.weights.h5`: the weights (`model.save_weights`), without an
  optimizer;
- `metadata.json`: `keras_version`, `keras_diffusion_version`,
  `parameter_count` and `date_saved`.

Loading needs every serializable class of the package registered; they
are, since importing any module of the package first runs
`keras_diffusion/__init__.py`, which imports them all.
"""

import datetime
import json
import os

import keras

from keras_diffusion.presets.build_for_loading import build_for_loading
from keras_diffusion.presets.build_for_loading import finish_loading
from keras_diffusion.presets.errors import ModelFileError
from keras_diffusion.presets.errors import check_type
from keras_diffusion.presets.errors import first_line
from keras_diffusion.presets.hub import download_preset
from keras_diffusion.presets.hub import is_hub_handle
from keras_diffusion.utils.io import atomic_directory
from keras_diffusion.utils.io import check_writable_dir
from keras_diffusion.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


def is_preset_dir(path):
    """Whether `path` is a directory holding a preset's `config.json`."""
    return os.path.isfile(os.path.join(os.fspath(path), CONFIG_FILE))


def save_to_preset(model, preset_dir, metadata=None):
    """Saves `model` as a preset directory (atomically).

    The directory is written beside its final place and renamed into it,
    so a crash leaves no partial preset; an existing preset there is
    replaced. The weights are saved without the optimizer's state.

    Args:
        model: a `keras.Model` of this package (any registered,
            serializable model).
        preset_dir: path of the directory to write; its parent is created
            if needed. It must not be a file, nor a non-empty directory
            that is not a preset.
        metadata: optional dict of extra entries for `metadata.json`.

    Returns:
        `preset_dir`.

    Example:
    >>> model = kd.load_model("cfg")
    >>> save_to_preset(model, "my_cfg")
    >>> kd.load_model("my_cfg").generate(4, labels=3)
    """
    preset_dir = os.fspath(preset_dir)
    _check_preset_target(preset_dir)

    check_writable_dir(os.path.dirname(os.path.abspath(preset_dir)))
    config = keras.saving.serialize_keras_object(model)
    _pop_recursive(config, ("compile_config", "build_config"))
    info = {
        "keras_version": keras.version(),
        "keras_diffusion_version": __version__,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }
    info.update(metadata or {})
    with atomic_directory(preset_dir) as tmp:
        _write_json(os.path.join(tmp, CONFIG_FILE), config)
        _without_optimizer(model).save_weights(os.path.join(tmp, WEIGHTS_FILE))
        _write_json(os.path.join(tmp, METADATA_FILE), info)
    return preset_dir


def load_preset(preset, expected_type=None, name=None):
    """Loads a model from a preset directory or a hub handle.

    Args:
        preset: a preset directory, or a handle `hf://OWNER/NAME` or
            `kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]`.
        expected_type: optional class (or tuple); a model of another kind
            raises `ModelFileError` before its weights are read.
        name: what error messages call the preset (default: `preset`).

    Returns:
        The model, with its weights.

    Example:
    >>> model = load_preset("runs/cfg/preset")
    >>> model = load_preset("hf://someone/kd-cfg")
    """
    preset = os.fspath(preset)
    where = preset if name is None else name
    if is_hub_handle(preset):
        preset = download_preset(preset)
    for filename in (CONFIG_FILE, WEIGHTS_FILE):
        if not os.path.isfile(os.path.join(preset, filename)):
            raise ModelFileError(
                f"{where!r} is not a keras_diffusion preset: it has no "
                f"{filename} (a preset holds {CONFIG_FILE}, {WEIGHTS_FILE} and "
                f"{METADATA_FILE}, as `save_to_preset` writes them)."
            )
    try:
        with open(os.path.join(preset, CONFIG_FILE), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise ModelFileError(
            f"Could not read {CONFIG_FILE} of the preset {where!r}: {error}"
        ) from None
    if not isinstance(config, dict) or "registered_name" not in config:
        raise ModelFileError(
            f"{CONFIG_FILE} of the preset {where!r} is not a serialized Keras "
            "object (it has no `registered_name`)."
        )
    try:
        model = build_for_loading(config)
    except Exception as error:
        raise ModelFileError(
            f"Could not build the model of the preset {where!r} "
            f"({type(error).__name__}: {first_line(error)}); was it saved by "
            "keras_diffusion?"
        ) from None
    try:
        check_type(model, expected_type, where)
    except ModelFileError:
        finish_loading(discard=True)  # the model is not used
        raise
    try:
        model.load_weights(os.path.join(preset, WEIGHTS_FILE))
    except Exception as error:
        raise ModelFileError(
            f"Could not load the weights of the preset {where!r} "
            f"({type(error).__name__}: {first_line(error)}); "
            f"{WEIGHTS_FILE} is corrupt or does not match {CONFIG_FILE}."
        ) from None
    finally:
        finish_loading()
    return model


def read_metadata(preset_dir):
    """The preset's `metadata.json` as a dict (`{}` if it has none)."""
    path = os.path.join(os.fspath(preset_dir), METADATA_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_preset_target(preset_dir):
    if os.path.isfile(preset_dir):
        raise ValueError(
            f"Cannot save a preset to {preset_dir!r}: it is a file; give a "
            "directory name."
        )
    if os.path.isdir(preset_dir) and os.listdir(preset_dir) and not is_preset_dir(
        preset_dir
    ):
        raise ValueError(
            f"Cannot save a preset to {preset_dir!r}: it is a directory that "
            "holds other files (not a preset); choose a new or empty one."
        )


def _without_optimizer(model):
    """`model`, or a copy of it without its optimizer if it has one."""
    if getattr(model, "optimizer", None) is None:
        return model
    bare = type(model).from_config(model.get_config())
    bare.set_weights(model.get_weights())
    return bare


def _pop_recursive(config, keys):
    if isinstance(config, dict):
        for key in keys:
            config.pop(key, None)
        for value in config.values():
            _pop_recursive(value, keys)
    elif isinstance(config, (list, tuple)):
        for value in config:
            _pop_recursive(value, keys)


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=4) + "\n")
