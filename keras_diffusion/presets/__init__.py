"""Presets: models as directories in keras-hub's layout, by name, path or handle.

- `save_to_preset(model, dir)` writes a preset directory and
  `load_preset(dir_or_handle)` reads one (`preset_dir.py`).
- A preset can live on a hub: `hf://OWNER/NAME` (Hugging Face) or
  `kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]` (Kaggle Models),
  through the hubs' own clients (`hub.py`).
- The package ships its trained models as presets in `weights/`
  (`shipped.py`); `load_model` takes a shipped name, a `.keras` file, a
  preset directory or a handle (`load_model.py`).
- `PresetMixin` gives the package's model classes `from_preset` and
  `save_to_preset` (`preset_mixin.py`).
- Both loaders build the model without computing the initial weights that
  loading overwrites (`build_for_loading.py`; it matters under JAX).

Imports point one way: errors, build_for_loading <- hub <- preset_dir <-
shipped <- load_model <- preset_mixin.
"""

from keras_diffusion.presets.errors import ModelFileError
from keras_diffusion.presets.errors import check_type
from keras_diffusion.presets.hub import HUB_EXTRA
from keras_diffusion.presets.hub import download_preset
from keras_diffusion.presets.hub import is_hub_handle
from keras_diffusion.presets.load_model import load_model
from keras_diffusion.presets.load_model import resolve_model_path
from keras_diffusion.presets.preset_dir import CONFIG_FILE
from keras_diffusion.presets.preset_dir import METADATA_FILE
from keras_diffusion.presets.preset_dir import WEIGHTS_FILE
from keras_diffusion.presets.preset_dir import is_preset_dir
from keras_diffusion.presets.preset_dir import load_preset
from keras_diffusion.presets.preset_dir import read_metadata
from keras_diffusion.presets.preset_dir import save_to_preset
from keras_diffusion.presets.preset_mixin import PresetMixin
from keras_diffusion.presets.shipped import PRETRAINED
from keras_diffusion.presets.shipped import WEIGHTS_DIR
from keras_diffusion.presets.shipped import available_models
from keras_diffusion.presets.shipped import shipped_preset_dir

__all__ = ["CONFIG_FILE", "HUB_EXTRA", "METADATA_FILE", "PRETRAINED", "PresetMixin",
           "ModelFileError", "WEIGHTS_DIR", "WEIGHTS_FILE", "available_models",
           "check_type", "download_preset", "is_hub_handle", "is_preset_dir",
           "load_model", "load_preset", "read_metadata", "resolve_model_path",
           "save_to_preset", "shipped_preset_dir"]
