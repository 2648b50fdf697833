"""Every shipped model loads with the current code under this backend.

A layer class changed inside a functional network renames its weights in
the `.keras` file, and loading the shipped files then fails; this catches
it. (How good the shipped models are is measured by the benchmarks.)
"""

import keras
import pytest

from keras_diffusion import load_model
from keras_diffusion.pretrained import available_models


def test_weights_are_shipped():
    assert "cfg" in available_models()


@pytest.mark.parametrize("name", available_models())
def test_shipped_model_loads(name):
    model = load_model(name)
    assert isinstance(model, keras.Model)
    assert model.weights
