"""`kd train` on images that are not MNIST: 32x32 RGB in class folders,
and 20x20 grayscale; the networks are built for the data.

The recipes are swapped for tiny versions of themselves (the same kinds,
smaller widths), and TensorFlow trains eagerly (tracing a train step costs
it ~20 s and is not under test here)."""

import dataclasses
import os

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import train_eagerly_under_tensorflow
from keras_diffusion_cli.main import cli

TINY = {"widths": (8, 16, 16), "embedding_dim": 16, "num_heads": 1}
TINY_LATENT = {"widths": (16,), "embedding_dim": 16, "num_heads": 1}


@pytest.fixture
def tiny_recipes(monkeypatch):
    from keras_diffusion.app import recipes

    for name, recipe in list(recipes.RECIPES.items()):
        if isinstance(recipe, recipes.UNetRecipe) and recipe.network:
            small = TINY_LATENT if recipe.needs_vae else TINY
            monkeypatch.setitem(recipes.RECIPES, name, recipe.replace(network=small))
    train_eagerly_under_tensorflow(monkeypatch)


def _folder(root, size, channels, classes=("cat", "dog", "owl"), per_class=4):
    """PNGs in one sub-folder per class, each class a bright square in its
    own place (and colour)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        os.makedirs(root / name)
        for number in range(per_class):
            image = rng.integers(0, 40, (size, size, channels)).astype("uint8")
            start = 2 + 4 * index
            image[start : start + 6, start : start + 6, index % channels] = 230
            Image.fromarray(image.squeeze()).save(root / name / f"{number}.png")
    return root


def _kd(*args, exit_code=0):
    """Runs `kd ARGS` in this process; checks its exit status."""
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output + repr(result.exception)
    return result


TRAIN = ("--max-steps", 1, "--batch-size", 4)


def _sample(model, out, num, *flags):
    """`kd sample` into an `.npz`; its `(images, labels or None)`."""
    _kd("sample", "--model", model, "--num", num, "--steps", 2, "--out", out, *flags)
    with np.load(out) as samples:
        return samples["images"], samples.get("labels")


def test_an_rgb_folder_trains_pixel_and_latent_kinds_and_samples_in_rgb(
        tiny_recipes, tmp_path):
    data = _folder(tmp_path / "pets", 32, 3)
    out = tmp_path / "runs"
    _kd("train", "ddpm", "--data", data, *TRAIN, "--out", out / "ddpm")
    images, _ = _sample(out / "ddpm" / "ddpm.keras", tmp_path / "ddpm.npz", 8)
    assert images.shape == (8, 32, 32, 3)
    assert images.min() >= 0 and images.max() <= 1

    # The class-conditional latent kind trains its VAE first, for 32x32x3.
    _kd("train", "cfg", "--data", data, *TRAIN, "--out", out / "cfg")
    vae = keras.saving.load_model(out / "cfg" / "vae" / "vae.keras")
    assert vae.latent_shape == (8, 8, 4)
    images, labels = _sample(out / "cfg" / "cfg.keras", tmp_path / "cfg.npz", 8,
                             "--class", 2, "--animate", tmp_path / "cfg.gif")
    assert images.shape == (8, 32, 32, 3) and labels.tolist() == [2] * 8
    assert os.path.getsize(tmp_path / "cfg.gif") > 0
    # Its classes are the folder's three, not MNIST's ten.
    result = _kd("sample", "--model", out / "cfg" / "cfg.keras", "--class", 3,
                 "--out", tmp_path / "x.png", exit_code=2)
    assert "0-2" in result.output


def test_a_grayscale_folder_of_another_size_trains_and_conditional_kinds_need_labels(
        tiny_recipes, tmp_path):
    data = _folder(tmp_path / "shapes", 20, 1)
    out = tmp_path / "runs"
    _kd("train", "rf-pixel", "--data", data, *TRAIN, "--out", out / "rf")
    images, _ = _sample(out / "rf" / "rf-pixel.keras", tmp_path / "rf.npz", 3)
    assert images.shape == (3, 20, 20, 1)
    # Resized and converted on the way in: 28x28 RGB.
    _kd("train", "ddpm", "--data", data, "--image-size", 28, "--channels", 3,
        *TRAIN, "--out", out / "ddpm")
    model = keras.saving.load_model(out / "ddpm" / "ddpm.keras")
    assert model.image_shape == (28, 28, 3)

    flat = tmp_path / "flat"
    flat.mkdir()
    for path in (data / "cat").iterdir():
        os.link(path, flat / path.name)
    result = _kd("train", "classifier", "--data", flat, *TRAIN, "--out", out / "clf",
                 exit_code=2)
    assert "class-conditional" in result.output and "sub-folder" in result.output
    assert not os.path.exists(out / "clf")


def test_sizes_the_networks_cannot_halve_are_refused_with_what_works(
        tiny_recipes, tmp_path):
    data = _folder(tmp_path / "odd", 18, 1)
    result = _kd("train", "vae", "--data", data, *TRAIN, "--out", tmp_path / "v",
                 exit_code=2)
    assert "multiples of 4" in result.output and "--image-size" in result.output
    assert not os.path.exists(tmp_path / "v")


def test_recipes_build_for_the_data_shape_and_classes():
    from keras_diffusion.app.recipes import RECIPES

    ddpm = RECIPES["ddpm"].replace(network=TINY).build(seed=0,
                                                      image_shape=(32, 32, 3))
    assert ddpm.image_shape == (32, 32, 3)
    classifier = RECIPES["classifier"].replace(
        network={"widths": (8, 8), "embedding_dim": 8}).build(
            seed=0, image_shape=(16, 16, 1), num_classes=4)
    assert classifier.num_classes == 4 and classifier.image_shape == (16, 16, 1)
    vae = RECIPES["vae"].build(seed=0, image_shape=(32, 32, 3))
    assert vae.latent_shape == (8, 8, 4)
    cfg = RECIPES["cfg"].replace(network=TINY_LATENT).build(
        seed=0, vae=vae, num_classes=3)
    assert cfg.num_classes == 3 and cfg.image_shape == (8, 8, 4)
    assert dataclasses.replace(RECIPES["ddpm"], name="other").name == "other"


def test_train_names_the_function_of_the_kinds_it_does_not_train(tmp_path):
    from keras_diffusion.app.train import train

    for kind, name in (("evaluator", "train_evaluator"), ("reflow", "train_reflow")):
        with pytest.raises(ValueError, match=name):
            train(kind, data=str(tmp_path), out_dir=str(tmp_path / kind), verbose=0)
        assert not (tmp_path / kind).exists()
