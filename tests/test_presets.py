"""Presets: `save_to_preset`, `from_preset` and `kd.load_model` on a preset
directory, and hub handles served offline from the hub clients' own caches."""

import json
import os
import sys

import keras
import numpy as np
import pytest

import keras_diffusion as kd
from conftest import randomize
from keras_diffusion.models import DDPM
from keras_diffusion.models import VAE
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.networks import UNet
from keras_diffusion.networks import VAEDecoder
from keras_diffusion.networks import VAEEncoder
from keras_diffusion.presets import ModelFileError
from keras_diffusion.presets import save_to_preset

PRESET_FILES = ["config.json", "metadata.json", "model.weights.h5"]


def _latent_cfg():
    vae = VAE(VAEEncoder(latent_channels=2, widths=(8, 16, 16)),
              VAEDecoder((7, 7, 2), widths=(16, 16, 8)), seed=0)
    unet = UNet((7, 7, 2), widths=(16,), attention_levels=(0,), embedding_dim=32,
                num_heads=1, num_classes=10)
    model = LatentDiffusion(unet, vae, latent_scale=1.3, seed=0)
    randomize(model)
    return model


def _weights(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def _same_weights(a, b):
    a, b = _weights(a), _weights(b)
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _images(model):
    return model.generate(3, num_steps=2, seed=0, progress=False, labels=[1, 2, 3],
                          guidance=2.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny class-conditional latent model with a built optimizer (as after
    training), saved as a preset."""
    model = _latent_cfg()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    preset = tmp_path_factory.mktemp("presets") / "cfg-tiny"
    assert model.save_to_preset(preset) == str(preset)
    return model, preset


def test_preset_layout_and_metadata(trained):
    model, preset = trained
    assert sorted(os.listdir(preset)) == PRESET_FILES
    with open(preset / "config.json") as f:
        config = json.load(f)
    assert config["registered_name"] == "keras_diffusion>LatentDiffusion"
    assert "compile_config" not in json.dumps(config)
    with open(preset / "metadata.json") as f:
        metadata = json.load(f)
    assert metadata["keras_version"] == keras.version()
    assert metadata["keras_diffusion_version"] == kd.__version__
    assert metadata["parameter_count"] == model.count_params()
    assert len(metadata["date_saved"]) == len("2026-01-31@12:00:00")


def test_load_model_reads_a_preset_directory(trained):
    model, preset = trained
    loaded = kd.load_model(str(preset))
    assert type(loaded) is LatentDiffusion
    assert _same_weights(model, loaded)
    np.testing.assert_array_equal(_images(loaded), _images(model))
    assert getattr(loaded, "optimizer", None) is None


def test_the_preset_holds_no_optimizer_state(trained):
    import h5py

    _, preset = trained
    with h5py.File(preset / "model.weights.h5", "r") as f:
        assert sorted(f) == ["layers", "vars"]  # no "optimizer"


def test_from_preset_keeps_the_vae_frozen(trained):
    _, preset = trained
    loaded = DDPM.from_preset(preset)  # a LatentDiffusion is a DDPM
    assert isinstance(loaded, LatentDiffusion)
    assert not any(v.trainable for v in loaded.vae.weights)
    network_ids = {id(v) for v in loaded.network.trainable_variables}
    assert {id(v) for v in loaded.trainable_variables} == network_ids


def test_from_preset_refuses_another_kind(trained):
    _, preset = trained
    with pytest.raises(ModelFileError, match="holds a LatentDiffusion.*needs a VAE"):
        VAE.from_preset(preset)
    with pytest.raises(ModelFileError, match="needs a RectifiedFlow"):
        RectifiedFlow.from_preset(preset)


def test_a_bare_directory_name_is_a_path(trained, tmp_path, monkeypatch):
    _, preset = trained
    monkeypatch.chdir(preset.parent)
    assert isinstance(kd.load_model(preset.name), LatentDiffusion)


def test_save_replaces_a_preset_and_refuses_other_files(trained, tmp_path):
    model, _ = trained
    target = tmp_path / "p"
    save_to_preset(model, target)
    save_to_preset(model, target)  # replaces the preset
    assert sorted(os.listdir(target)) == PRESET_FILES
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        save_to_preset(model, tmp_path / "afile")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        save_to_preset(model, other)
    assert os.listdir(other) == ["notes.txt"]


def test_a_failed_save_leaves_nothing_behind(trained, tmp_path, monkeypatch):
    model, _ = trained
    target = tmp_path / "p"
    save_to_preset(model, target)
    before = {name: (target / name).read_bytes() for name in PRESET_FILES}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(model), "save_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        save_to_preset(model, target)
    with pytest.raises(OSError, match="disk full"):
        save_to_preset(model, tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == ["p"]  # no temporary directories
    assert {name: (target / name).read_bytes() for name in PRESET_FILES} == before


@pytest.mark.parametrize("damage, match", [
    (lambda d: os.remove(d / "model.weights.h5"), "no model.weights.h5"),
    (lambda d: (d / "config.json").write_text("{not json"),
     "Could not read config.json"),
    (lambda d: (d / "config.json").write_text("[]"), "not a serialized Keras object"),
    (lambda d: (d / "model.weights.h5").write_bytes(b"\0" * 64),
     "Could not load the weights"),
])
def test_damaged_presets_give_clear_errors(trained, tmp_path, damage, match):
    model, _ = trained
    preset = tmp_path / "p"
    save_to_preset(model, preset)
    damage(preset)
    with pytest.raises(ModelFileError, match=match):
        kd.load_model(str(preset))


def test_a_directory_without_config_is_not_a_preset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="is a directory but not a preset"):
        kd.load_model(str(tmp_path / "empty"))


def test_keras_files_still_load(trained, tmp_path):
    model, _ = trained
    path = str(tmp_path / "m.keras")
    model.save(path)
    assert _same_weights(kd.load_model(path), model)


# Hub handles, offline, through the clients' own caches.


def _hf_cache(tmp_path, preset, repo="kd-test/cfg-tiny"):
    """A Hugging Face hub cache holding `preset` as the main revision of `repo`."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    root = tmp_path / "hf" / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name in PRESET_FILES:
        (snapshot / name).write_bytes((preset / name).read_bytes())
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)
    return tmp_path / "hf"


@pytest.fixture
def hf_offline(monkeypatch):
    """HF_HUB_OFFLINE=1 and HF_HUB_CACHE, as huggingface_hub reads them.

    (huggingface_hub reads its environment once, at import; set the module's
    constants too in case it was imported already.)"""
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    def use(cache):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    return use


def test_hf_handle_loads_from_the_hub_cache_offline(trained, tmp_path, hf_offline):
    model, preset = trained
    hf_offline(_hf_cache(tmp_path, preset))
    loaded = kd.load_model("hf://kd-test/cfg-tiny")
    assert type(loaded) is LatentDiffusion and _same_weights(loaded, model)
    assert isinstance(DDPM.from_preset("hf://kd-test/cfg-tiny"), LatentDiffusion)


def test_hf_handle_missing_offline_says_so(tmp_path, hf_offline):
    hf_offline(tmp_path / "empty-cache")
    with pytest.raises(ModelFileError, match="not in the local cache.*HF_HUB_OFFLINE"):
        kd.load_model("hf://kd-test/missing")


def test_kaggle_handle_loads_from_the_kagglehub_cache(trained, tmp_path, monkeypatch):
    pytest.importorskip("kagglehub")
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle

    model, preset = trained
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    handle = parse_model_handle("kd-test/cfg-tiny/keras/tiny/1")
    cache = Cache()
    path = cache.get_path(handle)
    os.makedirs(path)
    for name in PRESET_FILES:
        with open(os.path.join(path, name), "wb") as f:
            f.write((preset / name).read_bytes())
    cache.mark_as_complete(handle)
    loaded = kd.load_model("kaggle://kd-test/cfg-tiny/keras/tiny/1")
    assert type(loaded) is LatentDiffusion and _same_weights(loaded, model)


@pytest.mark.parametrize("handle, client", [("hf://a/b", "huggingface_hub"),
                                            ("kaggle://a/b/keras/c/1", "kagglehub")])
def test_handles_without_the_hub_extra_name_the_install(monkeypatch, handle, client):
    monkeypatch.setitem(sys.modules, client, None)  # import raises ImportError
    with pytest.raises(ModelFileError, match=r'pip install "keras-diffusion\[hub\]"'):
        kd.load_model(handle)


@pytest.mark.parametrize("handle, match", [
    ("kaggle://owner/model", "OWNER/MODEL/FRAMEWORK/VARIATION"),
    ("hf://", "names no model"),
    ("hf://not a repo!", "not a Hugging Face handle"),
])
def test_malformed_handles(handle, match, hf_offline, tmp_path):
    hf_offline(tmp_path)
    with pytest.raises(ModelFileError, match=match):
        kd.load_model(handle)
