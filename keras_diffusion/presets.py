"""Presets: a model as a directory, in keras-hub's layout.

A preset directory holds three files:

- `config.json`: the model, serialized with
  `keras.saving.serialize_keras_object` (it carries `registered_name`, so
  loading needs no custom objects);
- `model.weights.h5`: the weights (`model.save_weights`), without an
  optimizer;
- `metadata.json`: `keras_version`, `keras_diffusion_version`,
  `parameter_count` and `date_saved`.

`save_to_preset(model, dir)` writes one; `load_preset(dir_or_handle)` reads
one from a local directory or from a hub: `hf://OWNER/NAME` (Hugging Face,
through `huggingface_hub`) or `kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]`
(Kaggle Models, through `kagglehub`). The hub clients are an optional
extra: `pip install "keras-diffusion[hub]"`.
"""

import datetime
import json
import os

import keras

from keras_diffusion.pretrained import ModelFileError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
HUB_SCHEMES = ("hf://", "kaggle://")
HUB_EXTRA = 'pip install "keras-diffusion[hub]"'


def is_preset_dir(path):
    """Whether `path` is a directory holding a preset's `config.json`."""
    return os.path.isfile(os.path.join(os.fspath(path), CONFIG_FILE))


def is_hub_handle(name):
    """Whether `name` is a hub handle (`hf://...` or `kaggle://...`)."""
    return isinstance(name, str) and name.startswith(HUB_SCHEMES)


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
    from keras_diffusion.utils.io import atomic_directory
    from keras_diffusion.utils.io import check_writable_dir
    from keras_diffusion.version import __version__

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
    import keras_diffusion  # noqa: F401  (registers the serializable classes)

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
        model = keras.saving.deserialize_keras_object(config)
    except Exception as error:
        raise ModelFileError(
            f"Could not build the model of the preset {where!r} "
            f"({type(error).__name__}: {_first_line(error)}); was it saved by "
            "keras_diffusion?"
        ) from None
    check_type(model, expected_type, where)
    try:
        model.load_weights(os.path.join(preset, WEIGHTS_FILE))
    except Exception as error:
        raise ModelFileError(
            f"Could not load the weights of the preset {where!r} "
            f"({type(error).__name__}: {_first_line(error)}); "
            f"{WEIGHTS_FILE} is corrupt or does not match {CONFIG_FILE}."
        ) from None
    return model


def read_metadata(preset_dir):
    """The preset's `metadata.json` as a dict (`{}` if it has none)."""
    path = os.path.join(os.fspath(preset_dir), METADATA_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def download_preset(handle):
    """Fetches a hub preset through the hub's own client; returns its local dir.

    `hf://OWNER/NAME` goes through `huggingface_hub.snapshot_download`
    (cached in `HF_HUB_CACHE`; with `HF_HUB_OFFLINE=1` only the cache is
    read). `kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]` goes through
    `kagglehub.model_download` (cached in `KAGGLEHUB_CACHE`; a handle with
    its version is read from the cache without the network, one without
    asks Kaggle for the latest version).

    Args:
        handle: the `hf://` or `kaggle://` handle.

    Returns:
        The path of the downloaded (or cached) directory.

    Example:
    >>> download_preset("hf://someone/kd-cfg")
    '/root/.cache/huggingface/hub/models--someone--kd-cfg/snapshots/...'
    """
    scheme, _, name = handle.partition("://")
    if not name.strip("/"):
        raise ModelFileError(f"The handle {handle!r} names no model.")
    if scheme == "hf":
        return _download_hf(handle, name.strip("/"))
    if scheme == "kaggle":
        return _download_kaggle(handle, name.strip("/"))
    raise ModelFileError(
        f"Unknown hub in {handle!r}; use hf://OWNER/NAME or "
        "kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]."
    )


class PresetMixin:
    """Adds `from_preset` and `save_to_preset` to a model class.

    Mixed in before `keras.Model` by the package's model classes
    (`GenerativeModel`, `VAE`, `NoisyClassifier`, `MNISTClassifier`).
    """

    @classmethod
    def from_preset(cls, preset):
        """Loads a model of this class (or a subclass) from a preset.

        Args:
            preset: a shipped name (see `kd info`), a preset directory, an
                `hf://` or `kaggle://` handle, or a `.keras` file.

        Returns:
            The model; `ModelFileError` if it is not a `cls`.

        Example:
        >>> model = DDPM.from_preset("cfg")          # a LatentDiffusion
        >>> vae = VAE.from_preset("hf://someone/kd-vae")
        """
        from keras_diffusion.pretrained import load_model

        return load_model(preset, expected_type=cls)

    def save_to_preset(self, preset_dir):
        """Saves this model as a preset directory; see `save_to_preset`.

        Example:
        >>> model.save_to_preset("my_model")
        >>> type(model).from_preset("my_model")
        """
        return save_to_preset(self, preset_dir)


def check_type(model, expected_type, where):
    """Raises `ModelFileError` unless `model` is an `expected_type`."""
    if expected_type is None or isinstance(model, expected_type):
        return
    names = getattr(expected_type, "__name__", None) or "/".join(
        t.__name__ for t in expected_type
    )
    raise ModelFileError(
        f"{where!r} holds a {type(model).__name__}, but this needs a {names}."
    )


def _download_hf(handle, repo_id):
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub import errors
    except ImportError:
        raise ModelFileError(
            f"Loading {handle!r} needs the huggingface_hub client: {HUB_EXTRA} "
            "(or pip install huggingface_hub)."
        ) from None
    try:
        return huggingface_hub.snapshot_download(repo_id)
    except errors.HFValidationError:
        raise ModelFileError(
            f"{handle!r} is not a Hugging Face handle; use hf://OWNER/NAME."
        ) from None
    except (errors.RepositoryNotFoundError, errors.GatedRepoError):
        raise ModelFileError(
            f"{handle!r} was not found on the Hugging Face Hub (or it is "
            "private or gated: log in with `hf auth login`)."
        ) from None
    except errors.LocalEntryNotFoundError:
        cache = constants.HF_HUB_CACHE
        if constants.is_offline_mode():
            raise ModelFileError(
                f"{handle!r} is not in the local cache ({cache}) and "
                "HF_HUB_OFFLINE is set; unset it to download."
            ) from None
        raise ModelFileError(
            f"Could not download {handle!r}: the network (or the Hugging Face "
            f"Hub) is unreachable, and it is not in the local cache ({cache})."
        ) from None
    except Exception as error:
        raise _download_failed(handle, error) from None


def _download_failed(handle, error):
    """The `ModelFileError` for a hub download that failed otherwise."""
    return ModelFileError(
        f"Could not download {handle!r} ({type(error).__name__}: "
        f"{_first_line(error)})."
    )


def _download_kaggle(handle, name):
    if len(name.split("/")) not in (4, 5):
        raise ModelFileError(
            f"{handle!r} is not a Kaggle model handle; use "
            "kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]."
        )
    try:
        import kagglehub
        import requests
    except ImportError:
        raise ModelFileError(
            f"Loading {handle!r} needs the kagglehub client: {HUB_EXTRA} "
            "(or pip install kagglehub)."
        ) from None
    try:
        return kagglehub.model_download(name)
    except requests.ConnectionError:
        versioned = len(name.split("/")) == 5
        raise ModelFileError(
            f"Could not download {handle!r}: the network (or Kaggle) is "
            "unreachable" + (
                ", and it is not in kagglehub's cache (KAGGLEHUB_CACHE)."
                if versioned else
                "; add the version (kaggle://.../VERSION) to load it from "
                "kagglehub's cache (KAGGLEHUB_CACHE) offline."
            )
        ) from None
    except requests.HTTPError as error:
        status = getattr(error.response, "status_code", None)
        if status in (401, 403, 404):
            raise ModelFileError(
                f"{handle!r} was not found on Kaggle (or it is private: set "
                "KAGGLE_USERNAME and KAGGLE_KEY, or run kagglehub.login())."
            ) from None
        raise ModelFileError(
            f"Could not download {handle!r} (HTTP {status}: "
            f"{_first_line(error)})."
        ) from None
    except Exception as error:
        raise _download_failed(handle, error) from None


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


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ""
