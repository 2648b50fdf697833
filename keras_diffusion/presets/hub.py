"""Hub handles: presets on the Hugging Face Hub and Kaggle Models.

`hf://OWNER/NAME` goes through `huggingface_hub`,
`kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]` through `kagglehub`;
both clients are an optional extra, `pip install "keras-diffusion[hub]"`.
"""

from keras_diffusion.presets.errors import ModelFileError
from keras_diffusion.presets.errors import first_line

HUB_SCHEMES = ("hf://", "kaggle://")
HUB_EXTRA = 'pip install "keras-diffusion[hub]"'


def is_hub_handle(name):
    """Whether `name` is a hub handle (`hf://...` or `kaggle://...`)."""
    return isinstance(name, str) and name.startswith(HUB_SCHEMES)


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
        f"{first_line(error)})."
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
            f"{first_line(error)})."
        ) from None
    except Exception as error:
        raise _download_failed(handle, error) from None
