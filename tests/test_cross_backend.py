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


def test_trained_model_samples_identically_on_both_other_backends(
        tiny_unet, mnist_batch, tmp_path):
    """Fit a few steps here, save, and DDIM-sample (eta=0) the file under the
    two other backends: the images agree to 1e-3 (float32 round-off)."""
    import keras_diffusion  # noqa: F401

    model = DDPM(tiny_unet, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(
        2e-3, weight_decay=1e-4, use_ema=True, ema_momentum=0.9),
        # Tracing the train step costs TensorFlow ~20 s of CPU; 4 eager
        # steps train the same weights.
        run_eagerly=keras.backend.backend() == "tensorflow")
    images, _ = mnist_batch
    model.fit(images[:64], batch_size=16, epochs=1, verbose=0)  # 4 steps
    path = str(tmp_path / "trained.keras")
    model.save(path)  # with the optimizer and its EMA state
    here = model.generate(4, sampler="ddim", num_steps=8, seed=11, progress=False)
    assert here.std() > 0.01

    current = keras.backend.backend()
    for other in BACKENDS:
        if other == current:
            continue
        out = str(tmp_path / f"{other}.npy")
        env = dict(os.environ, KERAS_BACKEND=other, TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run([sys.executable, "-c", SAMPLE, path, out], env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{other}: {result.stderr[-2000:]}"
        there = np.load(out)
        assert np.abs(here - there).max() < 1e-3, f"{current} vs {other}"
