"""The evaluator's saved reference features: `kd evaluate` without data for
MNIST, and an evaluator for any labelled folder (`kd train evaluator`,
`--evaluator`), with FID while training on that folder."""

import csv
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import train_eagerly_under_tensorflow
from keras_diffusion.data import load_mnist
from keras_diffusion.data import load_splits
from keras_diffusion.metrics import Evaluator
from keras_diffusion.metrics import reference_path
from keras_diffusion_cli.main import cli


@pytest.fixture(scope="module")
def shipped():
    return Evaluator.load()


def _kd(*args, exit_code=0):
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output + repr(result.exception)
    return result


def test_the_shipped_reference_gives_the_figures_of_the_data(shipped, mnist_dir):
    assert len(shipped.reference["train"]) == len(shipped.reference["test"]) == 10_000
    assert shipped.reference["data"] == "MNIST"
    # The same to float rounding (the file's features were computed under
    # TensorFlow; the backends agree to about 1e-6 in FID).
    for num in (256, 1000):
        assert shipped.floor(num) == pytest.approx(shipped.floor(num, mnist_dir),
                                                   abs=1e-4)
    images = load_mnist(mnist_dir, "train")[0][-300:] / np.float32(255)
    assert shipped.fid(images) == pytest.approx(shipped.fid(images, data=mnist_dir),
                                                abs=1e-4)
    assert shipped.fid(images) > shipped.floor(300) > 0


def test_kd_evaluate_scores_a_file_without_data(mnist_dir, tmp_path):
    images, labels = load_mnist(mnist_dir, "test")
    path = tmp_path / "real.npz"
    np.savez(path, images=images[:400, :, :, None] / np.float32(255),
             labels=labels[:400])
    scores = json.loads(_kd("evaluate", "--samples", path, "--json").output)
    # The file holds the very test digits the reference was computed from.
    assert scores["fid"] < 1e-3 < scores["floor"]
    assert scores["reference"] == "MNIST" and scores["accuracy"] > 0.97
    table = _kd("evaluate", "--samples", path).output
    assert "vs 400 test images of MNIST" in table


def test_a_reference_too_short_or_of_other_features_says_so(shipped):
    features = shipped.reference["test"][:10]
    short = Evaluator(shipped.classifier, reference={"train": features,
                                                     "test": features})
    with pytest.raises(ValueError, match="features of 10 test images"):
        short.fid(np.zeros((20, 28, 28, 1), "float32"))
    with pytest.raises(ValueError, match=r"\(N, 128\)"):
        Evaluator(shipped.classifier, reference={"train": features[:, :5],
                                                 "test": features})


def _folder(root, size=16, classes=("cat", "dog", "owl"), per_class=20):
    """RGB PNGs, one sub-folder per class: each class a bright square of
    its own colour and place."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        os.makedirs(root / name)
        for number in range(per_class):
            image = rng.integers(0, 40, (size, size, 3)).astype("uint8")
            start = 1 + 4 * index
            image[start:start + 5, start:start + 5, index] = 230
            Image.fromarray(image).save(root / name / f"{number:02d}.png")
    return root


def test_an_evaluator_for_a_folder_judges_models_of_it(monkeypatch, tmp_path):
    from keras_diffusion.app import recipes

    data = _folder(tmp_path / "pets")
    out = tmp_path / "judge"
    _kd("train", "evaluator", "--data", data, "--epochs", 1, "--batch-size", 9,
        "--out", out)
    path = out / "evaluator.keras"
    for saved in (reference_path(path), reference_path(out / "preset")):
        assert os.path.isfile(saved), saved
    judge = Evaluator.load(path)
    assert judge.image_shape == (16, 16, 3)
    # Every tenth image is held out as the test split, the rest train.
    train, test = load_splits(data)
    assert len(train.images) == 54 and len(test.images) == 6
    # The folder is read class by class; the splits come in a fixed random
    # order, so that their first images (the FID's) are of every class.
    assert len(set(train.labels[:9].tolist())) == 3
    assert len(set(test.labels[:3].tolist())) > 1
    np.testing.assert_array_equal(load_splits(data)[0].labels, train.labels)
    expected = Evaluator(judge.classifier).compute_reference(data)
    for split in ("train", "test"):
        np.testing.assert_allclose(judge.reference[split], expected[split],
                                   rtol=0, atol=1e-5)
    assert Evaluator.load(out / "preset").floor(6) == pytest.approx(
        judge.floor(6, data), abs=1e-6)

    # FID while training on the folder, judged by its own evaluator.
    monkeypatch.setitem(recipes.RECIPES, "ddpm", recipes.RECIPES["ddpm"].replace(
        network={"widths": (8, 16, 16), "embedding_dim": 16, "num_heads": 1}))
    train_eagerly_under_tensorflow(monkeypatch)
    runs = tmp_path / "ddpm"
    _kd("train", "ddpm", "--data", data, "--max-steps", 2, "--batch-size", 6,
        "--eval-every", 1, "--eval-images", 6, "--evaluator", path, "--out", runs)
    with open(runs / "fid.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["step"] for row in rows] == ["1", "2"]
    assert all(np.isfinite(float(row["fid"])) for row in rows)
    # More images than the held-out test split: refused before any work.
    result = _kd("train", "ddpm", "--data", data, "--max-steps", 1,
                 "--batch-size", 6, "--eval-every", 1, "--eval-images", 8, "--evaluator", path,
                 "--out", tmp_path / "none", exit_code=2)
    assert "6 test images" in result.output
    assert not os.path.exists(tmp_path / "none")

    model = runs / "ddpm.keras"
    scores = json.loads(_kd("evaluate", "--model", model, "--evaluator", out / "preset",
                            "--num", 6, "--steps", 2, "--json").output)
    assert scores["reference"] == str(data) and scores["num"] == 6
    assert scores["floor"] == pytest.approx(judge.floor(6), abs=1e-6)
    # The MNIST evaluator cannot read these images, and says what to do.
    result = _kd("evaluate", "--model", model, "--num", 6, exit_code=2)
    assert "16x16x3" in result.output and "kd train evaluator" in result.output


def test_the_shipped_fashion_model_is_judged_by_the_evaluator_its_preset_names():
    from keras_diffusion.app.evaluate import evaluate

    scores = evaluate(model="fashion-cfg", num_images=20, num_steps=2,
                      guidance=2.0)
    assert scores["reference"] == "Fashion-MNIST" and scores["num"] == 20
    assert scores["floor"] == pytest.approx(
        Evaluator.load("fashion-evaluator").floor(20), abs=1e-4)
    # Another evaluator when asked for.
    assert evaluate(model="fashion-cfg", num_images=20, num_steps=2,
                    evaluator="evaluator")["reference"] == "MNIST"
