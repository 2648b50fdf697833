"""Every shipped preset loads with the current code under this backend, and
the models that sample do.

A layer class changed inside a functional network renames its weights, and
loading the shipped presets then fails; this catches it. (How good the
shipped models are is measured by the benchmarks; that a preset gives the
images of the `.keras` file it was converted from, `tools/shipped_to_presets.py`
checked when it wrote them.)
"""

import os

import keras
import numpy as np
import pytest

from keras_diffusion import load_model
from keras_diffusion.models import SAMPLING_MODELS
from keras_diffusion.presets import PRETRAINED
from keras_diffusion.presets import WEIGHTS_DIR
from keras_diffusion.presets import available_models
from keras_diffusion.presets import shipped_preset_dir
from keras_diffusion.presets import read_metadata


def test_weights_are_shipped_as_presets():
    assert available_models() == list(PRETRAINED)
    assert not [name for name in os.listdir(WEIGHTS_DIR) if name.endswith(".keras")]


@pytest.mark.parametrize("name", available_models())
def test_shipped_preset_loads_and_samples(name):
    model = load_model(name)
    assert isinstance(model, keras.Model)
    assert model.weights
    metadata = read_metadata(shipped_preset_dir(name))
    assert {"keras_version", "keras_diffusion_version", "parameter_count",
            "date_saved"} <= set(metadata)
    assert metadata["parameter_count"] == model.count_params()
    if isinstance(model, SAMPLING_MODELS):
        labels = [3, 7] if model.conditional else None
        images = model.generate(2, num_steps=2, seed=0, progress=False,
                                labels=labels)
        assert images.shape == (2, 28, 28, 1)
        assert np.all(np.isfinite(images))
        assert 0 <= images.min() and images.max() <= 1
