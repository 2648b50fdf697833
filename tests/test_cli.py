import os

import numpy as np
import pytest
from click.testing import CliRunner

from keras_diffusion_cli.main import cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    """`kd train ddpm` for a few steps; shared by the sampling tests."""
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(cli, [
        "train", "ddpm", "--data", mnist_dir, "--max-steps", "3",
        "--batch-size", "16", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_model_log_and_grid(trained):
    assert (trained / "ddpm.keras").is_file()
    log = (trained / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and len(log) == 2
    assert (trained / "samples" / "epoch_001.png").is_file()
    assert not (trained / "backup").exists()


def test_sample_png_and_npz(trained, tmp_path):
    runner = CliRunner()
    model = str(trained / "ddpm.keras")
    png = tmp_path / "grid.png"
    result = runner.invoke(cli, ["sample", "--model", model, "--sampler", "ddim",
                                 "--steps", "3", "--num", "4", "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    npz = tmp_path / "s.npz"
    result = runner.invoke(cli, ["sample", "--model", model, "--sampler", "ddpm",
                                 "--steps", "4", "--num", "3", "--out", str(npz)])
    assert result.exit_code == 0, result.output
    images = np.load(npz)["images"]
    assert images.shape == (3, 28, 28, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert sorted(os.listdir(tmp_path)) == ["grid.png", "s.npz"]  # no temp files


def _bad(args, match, tmp_path):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert match in result.output, result.output
    assert len(lines) <= 3  # click's usage line, its hint, and the error
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("args, match", [
    (["--steps", "0"], "--steps"),
    (["--steps", "-2"], "--steps"),
    (["--num", "-1"], "--num"),
    (["--num", "0"], "--num"),
    (["--sampler", "ddpm", "--steps", "1001"], "1 to 1000"),
    (["--eta", "-1"], "--eta"),
    (["--model", "nope"], "Unknown model 'nope'"),
    (["--model", "missing/model.keras"], "does not exist"),
    (["--sampler", "euler"], "euler"),
])
def test_bad_sample_flags(trained, tmp_path, args, match):
    if "--model" not in args:
        args = args + ["--model", str(trained / "ddpm.keras")]
    _bad(["sample", "--out", str(tmp_path / "x.png")] + args, match, tmp_path)


def test_corrupt_model_file(tmp_path_factory, tmp_path):
    bad = tmp_path_factory.mktemp("bad") / "broken.keras"
    bad.write_bytes(os.urandom(256))
    _bad(["sample", "--model", str(bad), "--out", str(tmp_path / "x.png")],
         "corrupt", tmp_path)


def test_truncated_model_file(trained, tmp_path_factory, tmp_path):
    data = (trained / "ddpm.keras").read_bytes()
    bad = tmp_path_factory.mktemp("trunc") / "half.keras"
    bad.write_bytes(data[: len(data) // 2])
    _bad(["sample", "--model", str(bad), "--out", str(tmp_path / "x.png")],
         "corrupt", tmp_path)


def test_bad_output_suffix(trained, tmp_path):
    _bad(["sample", "--model", str(trained / "ddpm.keras"), "--out",
          str(tmp_path / "x.jpg")], ".png", tmp_path)


def test_missing_data_path(tmp_path):
    _bad(["train", "ddpm", "--data", str(tmp_path / "nowhere"), "--max-steps", "1",
          "--out", str(tmp_path / "run")], "does not exist", tmp_path)


def test_unknown_backend_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_BACKEND", "theano")
    _bad(["info"], "KERAS_BACKEND='theano'", tmp_path)


def test_info_lists_backend_and_models():
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    import keras

    assert f"backend {keras.backend.backend()}" in result.output
    assert "ddpm" in result.output


def test_kd_train_takes_every_recipe_and_only_those():
    # `kd train` lists the kinds itself, so that its help and a mistyped
    # kind need no framework import; they must be the recipes'.
    from keras_diffusion.app.recipes import RECIPES
    from keras_diffusion_cli.main import TRAIN_KINDS

    assert sorted(TRAIN_KINDS) == sorted(RECIPES)


def test_kd_train_pair_kinds_are_the_recipes_that_start_from_a_flow():
    from keras_diffusion.app.recipes import RECIPES
    from keras_diffusion_cli.main import PAIR_KINDS

    assert sorted(PAIR_KINDS) == sorted(
        name for name, recipe in RECIPES.items() if recipe.from_flow)
