"""The noisy-image classifier and classifier guidance."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import randomize
from keras_diffusion.guidance import classifier_guided_model_fn
from keras_diffusion.guidance import classifier_log_prob_gradient
from keras_diffusion.models import DDPM
from keras_diffusion.models import NoisyClassifier
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.networks import TimeConditionedClassifier
from keras_diffusion.networks import UNet
from keras_diffusion_cli.main import cli


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _tiny_classifier(seed=1, randomized=True):
    classifier = NoisyClassifier(
        TimeConditionedClassifier(widths=(8, 16), embedding_dim=16), seed=seed
    )
    if randomized:
        randomize(classifier.network, scale=0.1)
    return classifier


def _tiny_ddpm(**kwargs):
    network = UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                   num_heads=1, **kwargs)
    randomize(network)
    return DDPM(network, seed=3)


def test_gradient_matches_finite_differences():
    classifier = _tiny_classifier()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 28, 28, 1)).astype("float32")
    labels = np.array([3, 8])
    t = np.array(250)
    gradient = _np(classifier_log_prob_gradient(classifier, x, t, labels))
    assert gradient.shape == x.shape and np.abs(gradient).max() > 0

    def total_log_prob(images):
        logits = _np(classifier.logits(images, t)).astype("float64")
        logits -= logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        return log_probs[np.arange(len(labels)), labels].sum()

    # Central differences along a few random directions (float32 network,
    # so a step of 1e-2 and a loose tolerance).
    for _ in range(3):
        direction = rng.normal(size=x.shape).astype("float32")
        direction /= np.linalg.norm(direction)
        eps = 1e-2
        numeric = (total_log_prob(x + eps * direction)
                   - total_log_prob(x - eps * direction)) / (2 * eps)
        analytic = float(np.sum(gradient * direction))
        assert abs(numeric - analytic) <= 0.05 * abs(analytic) + 1e-3, (
            numeric, analytic)


def test_gradient_is_per_image():
    classifier = _tiny_classifier()
    x = np.random.default_rng(1).normal(size=(3, 28, 28, 1)).astype("float32")
    # The same image beside two different ones (batches of 2, the shape of
    # the other tests, so JAX compiles nothing new).
    first = _np(classifier_log_prob_gradient(classifier, x[:2], 600, [5, 0]))
    second = _np(classifier_log_prob_gradient(classifier, x[[0, 2]], 600, [5, 9]))
    np.testing.assert_allclose(first[0], second[0], atol=1e-5)


def test_scale_zero_is_unguided_sampling_exactly():
    model, classifier = _tiny_ddpm(), _tiny_classifier()
    kwargs = dict(num_steps=3, seed=5, progress=False)
    guide = dict(labels=[1, 2, 3, 4], classifier=classifier)
    for sampler in ("ddim", "ddpm"):
        unguided = model.generate(4, sampler=sampler, **kwargs)
        zero = model.generate(4, sampler=sampler, classifier_scale=0.0, **kwargs,
                              **guide)
        np.testing.assert_array_equal(zero, unguided)
    guided = model.generate(4, sampler="ddpm", classifier_scale=30.0, **kwargs,
                            **guide)
    assert np.abs(guided - unguided).max() > 1e-3


def test_classifier_guidance_samples_the_predictions_unscaled():
    """A model's `pred_noise_scale` scales its unguided samples' noise
    predictions, not the classifier-guided ones'."""
    model, classifier = _tiny_ddpm(), _tiny_classifier()
    kwargs = dict(sampler="ddim", num_steps=3, seed=5, progress=False)
    guide = dict(labels=[1, 2, 3, 4], classifier=classifier, classifier_scale=5.0)
    guided, unguided = model.generate(4, **kwargs, **guide), model.generate(4, **kwargs)
    model.pred_noise_scale = 1.1
    np.testing.assert_allclose(model.generate(4, **kwargs, **guide), guided, atol=1e-6)
    assert np.abs(model.generate(4, **kwargs) - unguided).max() > 1e-3


def test_guided_noise_is_the_formula_and_compiled_matches_eager():
    model, classifier = _tiny_ddpm(), _tiny_classifier()
    x = np.random.default_rng(2).normal(size=(2, 28, 28, 1)).astype("float32")
    t, labels, scale = np.array(400, "int32"), np.array([2, 7]), 3.0
    context = {"labels": keras.ops.convert_to_tensor(labels.astype("int32")),
               "classifier_scale": keras.ops.convert_to_tensor(np.float32(scale))}
    guided = _np(classifier_guided_model_fn(model, classifier)(x, t, context))
    eps = _np(model.predict_noise(x, t))
    gradient = _np(classifier_log_prob_gradient(classifier, x, t, labels))
    noise_rate = np.sqrt(1.0 - model.schedule.alphas_cumprod[400])
    np.testing.assert_allclose(guided, eps - scale * noise_rate * gradient,
                               atol=1e-5)
    kwargs = dict(num_images=2, num_steps=3, seed=1, progress=False, labels=[2, 7],
                  classifier=classifier, classifier_scale=scale)
    # Float32 round-off, amplified by three steps of a randomized network.
    np.testing.assert_allclose(model.generate(compile=True, **kwargs),
                               model.generate(compile=False, **kwargs), atol=3e-3)


def test_guidance_raises_the_target_probability():
    model, classifier = _tiny_ddpm(), _tiny_classifier()
    x = np.random.default_rng(3).normal(size=(2, 28, 28, 1)).astype("float32")
    labels = np.full((2,), 6)
    t = 999
    before = _np(keras.ops.log_softmax(classifier.logits(x, t)))[:, 6]
    gradient = _np(classifier_log_prob_gradient(classifier, x, t, labels))
    after = _np(keras.ops.log_softmax(classifier.logits(x + 1e-2 * gradient, t)))
    assert np.all(after[:, 6] > before)


def test_fit_lowers_the_loss_and_the_noise_advances(mnist_batch):
    images, labels = mnist_batch
    classifier = _tiny_classifier(randomized=False)
    classifier.compile(optimizer=keras.optimizers.Adam(3e-3))
    first = _np(classifier.compute_loss(images[:64], labels[:64]))
    second = _np(classifier.compute_loss(images[:64], labels[:64]))
    assert first != second  # fresh timesteps and noise on every call
    history = classifier.fit(images, labels, batch_size=64, epochs=4, verbose=0,
                             shuffle=False)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_briefly_trained_classifier_beats_chance_at_small_t(mnist_dir):
    from keras_diffusion.app.classifier_accuracy import accuracy_vs_t
    from keras_diffusion.data import load_mnist
    from keras_diffusion.data import to_model_range

    images, labels = load_mnist(mnist_dir, "train")
    classifier = _tiny_classifier(randomized=False)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    classifier.fit(to_model_range(images[:2048]), labels[:2048], batch_size=64,
                   epochs=2, verbose=0)  # 64 steps
    table = dict(accuracy_vs_t(classifier, data=mnist_dir, timesteps=[0, 50, 999],
                               num_images=500))
    assert table[0] > 0.5 and table[50] > 0.5  # chance is 0.1 (about 0.8 here)
    assert table[999] < table[0]  # pure noise says little about the class


def test_save_and_load(tmp_path):
    from keras_diffusion.presets import load_model

    classifier = _tiny_classifier()
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    loaded = load_model(path, expected_type=NoisyClassifier)
    x = np.random.default_rng(4).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(_np(loaded.logits(x, 10)), _np(classifier.logits(x, 10)),
                               atol=1e-5)
    assert loaded.schedule.num_timesteps == 1000


def test_random_shifts_move_each_image_by_whole_pixels_within_range():
    from keras_diffusion.models.noisy_classifier import random_shifts

    images = np.full((64, 28, 28, 1), -1.0, "float32")
    images[:, 10:18, 12:16] = 1.0  # an 8x4 bar, away from the border
    shifted = _np(random_shifts(images, 2, keras.random.SeedGenerator(0)))
    offsets = set()
    for image in shifted[..., 0]:
        rows, columns = np.nonzero(image > 0)
        assert len(rows) == 32  # the whole bar, moved, not resampled
        assert set(np.unique(image)) == {-1.0, 1.0}
        offsets.add((rows.min() - 10, columns.min() - 12))
    assert offsets <= {(r, c) for r in range(-2, 3) for c in range(-2, 3)}
    assert len(offsets) > 10  # each image draws its own offset


def test_max_shift_trains_saves_and_is_checked(mnist_batch, tmp_path):
    from keras_diffusion.presets import load_model

    images, labels = mnist_batch
    classifier = NoisyClassifier(
        TimeConditionedClassifier(widths=(8, 16), embedding_dim=16), seed=1,
        max_shift=2)
    classifier.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = classifier.fit(images[:128], labels[:128], batch_size=64,
                             epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    path = str(tmp_path / "shifted.keras")
    classifier.save(path)
    assert load_model(path, expected_type=NoisyClassifier).max_shift == 2
    for bad in (-1, 1.5, 28):
        with pytest.raises(ValueError, match="max_shift"):
            NoisyClassifier(TimeConditionedClassifier(widths=(8, 16)),
                            max_shift=bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"classifier_scale": -1.0, "labels": 3}, ">= 0"),
    ({"classifier_scale": float("nan"), "labels": 3}, ">= 0"),
    ({}, "needs class labels"),
    ({"labels": 10}, "0-9"),
    ({"labels": 3, "guidance": 2.0}, "classifier-free"),
])
def test_bad_classifier_arguments(kwargs, message):
    model, classifier = _tiny_ddpm(), _tiny_classifier()
    with pytest.raises(ValueError, match=message):
        model.generate(2, num_steps=2, progress=False, classifier=classifier,
                       **kwargs)


def test_classifier_needs_an_unconditional_pixel_ddpm():
    classifier = _tiny_classifier()
    conditional = _tiny_ddpm(num_classes=10)
    with pytest.raises(ValueError, match="class-conditional"):
        conditional.generate(2, num_steps=2, labels=3, classifier=classifier,
                             progress=False)
    flow = RectifiedFlow(UNet(widths=(8, 16), attention_levels=(1,),
                              embedding_dim=32, num_heads=1))
    with pytest.raises(ValueError, match="RectifiedFlow"):
        flow.generate(2, num_steps=2, labels=3, classifier=classifier,
                      progress=False)
    with pytest.raises(ValueError, match="needs `classifier`"):
        _tiny_ddpm().generate(2, num_steps=2, classifier_scale=1.0, progress=False)
    other = NoisyClassifier(TimeConditionedClassifier(widths=(8, 16),
                                                      embedding_dim=16),
                            schedule="cosine")
    with pytest.raises(ValueError, match="schedule"):
        _tiny_ddpm().generate(2, num_steps=2, labels=3, classifier=other,
                              progress=False)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    keras.utils.set_random_seed(0)
    directory = tmp_path_factory.mktemp("models")
    paths = {"ddpm": str(directory / "ddpm.keras"),
             "cfg": str(directory / "cfg.keras"),
             "flow": str(directory / "flow.keras"),
             "classifier": str(directory / "classifier.keras")}
    _tiny_ddpm().save(paths["ddpm"])
    _tiny_ddpm(num_classes=10).save(paths["cfg"])
    RectifiedFlow(UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                       num_heads=1)).save(paths["flow"])
    _tiny_classifier().save(paths["classifier"])
    return paths


def test_cli_samples_with_a_classifier(model_files, tmp_path):
    runner = CliRunner()
    out = tmp_path / "sevens.npz"
    result = runner.invoke(cli, [
        "sample", "--model", model_files["ddpm"], "--classifier",
        model_files["classifier"], "--class", "7", "--classifier-scale", "2",
        "--num", "3", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    assert saved["images"].shape == (3, 28, 28, 1)
    assert saved["labels"].tolist() == [7, 7, 7]

    every = tmp_path / "every.npz"
    result = runner.invoke(cli, [
        "sample", "--model", model_files["ddpm"], "--classifier",
        model_files["classifier"], "--num", "10", "--steps", "2",
        "--out", str(every)])
    assert result.exit_code == 0, result.output
    assert np.load(every)["labels"].tolist() == list(range(10))


@pytest.mark.parametrize("args, match", [
    (["--model", "ddpm", "--classifier", "classifier", "--classifier-scale", "-1"],
     "--classifier-scale must be >= 0"),
    (["--model", "ddpm", "--classifier-scale", "2"], "needs --classifier"),
    (["--model", "cfg", "--classifier", "classifier", "--class", "3"],
     "class-conditional"),
    (["--model", "flow", "--classifier", "classifier", "--class", "3"],
     "RectifiedFlow"),
    (["--model", "ddpm", "--classifier", "ddpm", "--class", "3"],
     "NoisyClassifier"),
    (["--model", "ddpm", "--class", "3"], "--classifier"),
])
def test_cli_rejects_bad_classifier_flags(model_files, tmp_path, args, match):
    args = [model_files.get(arg, arg) for arg in args]
    result = CliRunner().invoke(cli, ["sample", "--out", str(tmp_path / "x.png")]
                                + args)
    assert result.exit_code == 2, result.output
    assert match in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3
    assert not list(tmp_path.iterdir())


def test_classifier_guidance_defaults_to_its_own_sampler():
    from keras_diffusion.app.sample import classifier_sampler

    assert classifier_sampler() == ("dpm-sde", 10)
    assert classifier_sampler(None, 20) == ("dpm-sde", 20)
    assert classifier_sampler("ddim", None) == ("ddim", None)


def test_cli_evaluate_flags_need_a_model(tmp_path):
    result = CliRunner().invoke(cli, [
        "evaluate", "--samples", str(tmp_path / "x.npz"), "--classifier",
        "classifier"])
    assert result.exit_code == 2, result.output
    assert "--classifier apply only with --model" in result.output
    result = CliRunner().invoke(cli, [
        "evaluate", "--model", "ddpm", "--classifier", "classifier",
        "--classifier-scale", "-2"])
    assert result.exit_code == 2, result.output
    assert "--classifier-scale must be >= 0" in result.output


def test_train_classifier_recipe(mnist_dir, tmp_path):
    result = CliRunner().invoke(cli, [
        "train", "classifier", "--data", mnist_dir, "--max-steps", "3",
        "--batch-size", "16", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    from keras_diffusion.presets import load_model

    classifier = load_model(str(tmp_path / "classifier.keras"),
                            expected_type=NoisyClassifier)
    assert classifier.num_classes == 10
    assert not (tmp_path / "samples").exists()


def test_classifier_scale_zero_keeps_the_labels_but_does_not_steer():
    from keras_diffusion.guidance import Conditioning

    model, classifier = _tiny_ddpm(), _tiny_classifier()
    conditioning = Conditioning.resolve(model, 2, labels=[3, 5],
                                        classifier=classifier,
                                        classifier_scale=0.0)
    np.testing.assert_array_equal(conditioning.labels, [3, 5])
    assert conditioning.steering_classifier is None
    assert conditioning.context() is None
    steered = Conditioning.resolve(model, 2, labels=3, classifier=classifier)
    assert steered.steering_classifier is classifier
    assert steered.classifier_scale == 1.0
    assert float(keras.ops.convert_to_numpy(
        steered.context()["classifier_scale"])) == 1.0
