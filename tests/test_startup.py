"""Start-up: loading without computing initial weights, the optimizer built
before the first step and JAX's compilation cache.
(benchmarks/startup.py measures the times.)"""

import os

import keras
import numpy as np
import pytest

import keras_diffusion as kd
from conftest import randomize
from keras_diffusion.models import DDPM
from keras_diffusion.networks import UNet
from keras_diffusion.presets import ModelFileError
from keras_diffusion.presets import save_to_preset
from keras_diffusion.utils import jax_cache


def _pending_variables():
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("uninitialized_variables") or []


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny conditional DDPM with random weights, as a preset and a .keras
    file (with its optimizer, as `kd train` saves it)."""
    unet = UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                num_heads=1, num_classes=10)
    model = DDPM(unet, seed=0)
    randomize(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.build_optimizer()
    folder = tmp_path_factory.mktemp("startup")
    keras_path = str(folder / "m.keras")
    model.save(keras_path)
    return model, save_to_preset(model, folder / "preset"), keras_path


@pytest.mark.parametrize("form", ["preset", "keras"])
def test_loaded_models_match_keras_own_loading(saved, form):
    model, preset, keras_path = saved
    loaded = kd.load_model(preset if form == "preset" else keras_path)
    reference = keras.saving.load_model(keras_path, compile=False)
    # Every variable (the seed generator's state too) has Keras' value.
    # (Their paths differ only in the numbers Keras appends to new names.)
    assert len(loaded.variables) == len(reference.variables)
    for mine, theirs in zip(loaded.variables, reference.variables):
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine),
                                      keras.ops.convert_to_numpy(theirs))
    assert _pending_variables() == []


def test_a_loaded_model_trains_its_optimizer_built_before_the_first_step(saved):
    loaded = kd.load_model(saved[1])
    loaded.compile(optimizer=keras.optimizers.Adam(1e-3),
                   run_eagerly=keras.backend.backend() == "tensorflow")
    assert not loaded.optimizer.built
    seen = []

    class Check(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(len(self.model.optimizer.variables))

    x = np.zeros((4, 28, 28, 1), "float32")
    history = loaded.fit(x, np.arange(4), batch_size=4, epochs=1, verbose=0,
                         callbacks=[Check()])
    assert np.isfinite(history.history["loss"][0])
    # Two moments per weight (and the step count) before any step ran.
    assert seen and seen[0] > 2 * len(loaded.trainable_variables)
    loaded.build_optimizer()  # built already: nothing to do
    assert loaded.optimizer.built


def test_a_failed_load_leaves_no_variable_without_a_value(saved, tmp_path):
    model, _, _ = saved
    preset = tmp_path / "p"
    save_to_preset(model, preset)
    (preset / "model.weights.h5").write_bytes(b"\0" * 64)
    with pytest.raises(ModelFileError, match="Could not load the weights"):
        kd.load_model(str(preset))
    assert _pending_variables() == []
    with pytest.raises(ModelFileError, match="needs a RectifiedFlow"):
        kd.load_model(str(saved[1]), expected_type=kd.RectifiedFlow)
    assert _pending_variables() == []


def test_build_optimizer_waits_for_an_uncompiled_model(tiny_unet):
    model = DDPM(tiny_unet, seed=0)
    model.build_optimizer()  # no optimizer: nothing to build
    assert getattr(model, "optimizer", None) is None


@pytest.fixture
def restore_jax_config():
    if keras.backend.backend() != "jax":
        yield
        return
    import jax

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    before = {name: getattr(jax.config, name) for name in names}
    yield
    for name, value in before.items():
        jax.config.update(name, value)


def test_compilation_cache_directory_and_off_switch(tmp_path, monkeypatch,
                                                    restore_jax_config):
    monkeypatch.delenv(jax_cache.JAX_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jax_cache.default_cache_dir() == str(tmp_path / "xdg" / "keras_diffusion"
                                                / "jax")
    monkeypatch.setenv(jax_cache.DISABLE_ENV, "off")
    assert jax_cache.enable_compilation_cache() is None
    monkeypatch.delenv(jax_cache.DISABLE_ENV)
    directory = jax_cache.enable_compilation_cache(str(tmp_path / "cache"))
    if keras.backend.backend() != "jax":
        assert directory is None  # JAX's cache only
        return
    import jax

    assert directory == str(tmp_path / "cache") and os.path.isdir(directory)
    assert jax.config.jax_compilation_cache_dir == directory
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
    # JAX's own variable picks the directory.
    monkeypatch.setenv(jax_cache.JAX_DIR_ENV, str(tmp_path / "theirs"))
    assert jax_cache.enable_compilation_cache() == str(tmp_path / "theirs")
