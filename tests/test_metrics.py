"""The Fréchet distance, the shipped MNIST evaluator and `kd evaluate`."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import BACKENDS
from conftest import randomize
from keras_diffusion.data import load_mnist
from keras_diffusion.metrics import Evaluator
from keras_diffusion.metrics import frechet_distance
from keras_diffusion.metrics import gaussian_blur
from keras_diffusion_cli.main import cli


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator.load()


def _digits(mnist_dir, split, num):
    images, labels = load_mnist(mnist_dir, split)
    return images[:num, :, :, None].astype("float32") / 255.0, labels[:num]


@pytest.fixture(scope="module")
def test_digits(mnist_dir):
    """The first 1,000 real test digits in [0, 1], and their labels."""
    return _digits(mnist_dir, "test", 1000)


# ---------------------------------------------------------------- distance


def test_frechet_distance_of_a_set_to_itself_is_zero():
    rng = np.random.default_rng(0)
    features = np.maximum(rng.normal(0, 1, (400, 32)) @ rng.normal(0, 1, (32, 32)), 0)
    scale = np.trace(np.cov(features, rowvar=False))
    assert frechet_distance(features, features) < 1e-6 * scale


def _whitened(rng, num, dim):
    """Samples with mean exactly 0 and sample covariance exactly I."""
    z = rng.normal(0, 1, (num, dim))
    z -= z.mean(axis=0)
    return z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mean_a, std_a = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 2.0])
    mean_b, std_b = np.array([1.0, 1.0, 0.0]), np.array([3.0, 0.5, 1.0])
    a = mean_a + std_a * _whitened(rng, 300, 3)
    b = mean_b + std_b * _whitened(rng, 500, 3)
    # |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2 = 5 + 5
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("a, b, match", [
    (np.zeros((10, 3)), np.zeros((10, 4)), "same dimension"),
    (np.zeros(10), np.zeros((10, 1)), "2-D"),
    (np.zeros((1, 3)), np.zeros((10, 3)), "at least 2"),
    (np.full((4, 2), np.nan), np.zeros((4, 2)), "NaN"),
])
def test_frechet_distance_rejects_bad_features(a, b, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(a, b)


# --------------------------------------------------------------- evaluator


def test_evaluator_classifies_real_test_digits(evaluator, test_digits):
    images, labels = test_digits
    assert evaluator.class_accuracy(images, labels) >= 0.98
    assert evaluator.confident_rate(images) >= 0.95


def test_fid_grows_with_blur_and_noise(evaluator, mnist_dir):
    real, _ = _digits(mnist_dir, "train", 500)
    noise = np.random.default_rng(0).uniform(0, 1, real.shape).astype("float32")
    floor = evaluator.fid(real, data=mnist_dir)
    blurred = [evaluator.fid(gaussian_blur(real, s), data=mnist_dir)
               for s in (0.7, 1.2, 2.0)]
    noisy = [evaluator.fid((1 - a) * real + a * noise, data=mnist_dir)
             for a in (0.15, 0.3, 0.5)]
    assert floor == pytest.approx(evaluator.floor(500, data=mnist_dir))
    assert floor < blurred[0] < blurred[1] < blurred[2], (floor, blurred)
    assert floor < noisy[0] < noisy[1] < noisy[2], (floor, noisy)


PROBABILITIES = """
import sys, numpy as np
from keras_diffusion.metrics import Evaluator
np.save(sys.argv[2], Evaluator.load().probabilities(np.load(sys.argv[1])))
"""


def test_evaluator_agrees_on_the_next_backend(evaluator, test_digits, tmp_path):
    images = test_digits[0][:64]
    here = evaluator.probabilities(images)
    current = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(current) + 1) % len(BACKENDS)]
    np.save(tmp_path / "images.npy", images)
    env = dict(os.environ, KERAS_BACKEND=other, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", PROBABILITIES, str(tmp_path / "images.npy"),
         str(tmp_path / "other.npy")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    there = np.load(tmp_path / "other.npy")
    assert here.shape == there.shape == (64, 10)
    assert np.abs(here - there).max() < 1e-4, f"{current} vs {other}"


def test_evaluator_rejects_images_outside_zero_one(evaluator, test_digits):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluator.probabilities(test_digits[0][:4] * 2 - 1)
    with pytest.raises(ValueError, match="shape"):
        evaluator.probabilities(np.zeros((4, 32, 32, 1), "float32"))


# ------------------------------------------------------------- kd evaluate


@pytest.fixture(scope="module")
def real_npz(test_digits, tmp_path_factory):
    """500 real test digits in [0, 1] with their labels, as `kd sample` writes."""
    path = tmp_path_factory.mktemp("samples") / "real.npz"
    images, labels = test_digits
    np.savez(path, images=images[:500], labels=labels[:500])
    return str(path)


def test_kd_evaluate_samples_table_and_json(real_npz, mnist_dir):
    runner = CliRunner()
    result = runner.invoke(cli, ["evaluate", "--samples", real_npz, "--data", mnist_dir])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == ["samples", "FID", "floor", "confident", "accuracy", "per"], \
        result.output
    per_class = result.output.splitlines()[-1]
    assert all(f"{label}:" in per_class for label in range(10)), per_class

    result = runner.invoke(cli, ["evaluate", "--samples", real_npz, "--data",
                                 mnist_dir, "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["num"] == 500
    assert scores["accuracy"] >= 0.97
    assert scores["confident_rate"] >= 0.9
    # The file holds the very test digits the FID compares against.
    assert scores["fid"] < 1e-3 < scores["floor"]
    assert scores["sampling_seconds"] is None


def test_kd_evaluate_samples_a_model(mnist_dir, tmp_path):
    from keras_diffusion.models import DDPM
    from keras_diffusion.networks import UNet

    network = UNet(widths=(8,), attention_levels=(), embedding_dim=16, num_heads=1)
    randomize(network)
    path = str(tmp_path / "model.keras")
    DDPM(network).save(path)
    result = CliRunner().invoke(cli, [
        "evaluate", "--model", path, "--steps", "3", "--num", "8", "--data",
        mnist_dir, "--json",
    ])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["num"] == 8 and scores["accuracy"] is None
    # The default of an unconditional model.
    assert scores["sampler"] == "dpm-sde" and scores["num_steps"] == 3
    assert scores["fid"] > scores["floor"] and scores["sampling_seconds"] > 0


def _write_npz(directory, name, **arrays):
    path = directory / name
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("make_args, match", [
    (lambda d: ["--samples", str(d / "missing.npz")], "does not exist"),
    (lambda d: ["--samples", _write_npz(d, "x.npz", pictures=np.zeros((2, 28, 28, 1)))],
     "no `images`"),
    (lambda d: ["--samples", _write_npz(d, "y.npz", images=np.zeros((2, 32, 32, 1)))],
     "(N, 28, 28, 1)"),
    (lambda d: ["--samples", _write_npz(d, "z.npz", images=np.full((2, 28, 28, 1), 5.0))],
     "[0, 1]"),
    (lambda d: ["--samples", str(d / "a.npz"), "--model", "ddpm"], "exactly one"),
    (lambda d: [], "exactly one"),
    (lambda d: ["--samples", str(d / "a.npz"), "--num", "10"], "--num"),
])
def test_kd_evaluate_bad_inputs(make_args, match, mnist_dir, tmp_path):
    args = ["evaluate", "--data", mnist_dir] + make_args(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and match in lines[0], result.output
