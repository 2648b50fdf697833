"""A model saved under this backend samples the same images under another."""

import os
import subprocess
import sys

import keras
import numpy as np

from conftest import BACKENDS
from conftest import randomize
from keras_diffusion.models import DDPM

SAMPLE = """
import sys, numpy as np
import keras_diffusion
model = keras_diffusion.load_model(sys.argv[1])
images = model.generate(4, sampler="ddim", num_steps=8, seed=11, progress=False)
np.save(sys.argv[2], images)
"""


def test_saved_model_samples_identically_on_the_next_backend(tiny_unet, tmp_path):
    import keras_diffusion  # noqa: F401

    randomize(tiny_unet)
    model = DDPM(tiny_unet)
    path = str(tmp_path / "model.keras")
    model.save(path)
    here = model.generate(4, sampler="ddim", num_steps=8, seed=11, progress=False)

    current = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(current) + 1) % len(BACKENDS)]
    out = str(tmp_path / "other.npy")
    env = dict(os.environ, KERAS_BACKEND=other, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", SAMPLE, path, out], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    there = np.load(out)
    assert np.abs(here - there).max() < 1e-3, f"{current} vs {other}"
