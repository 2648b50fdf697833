"""Class conditioning and classifier-free guidance."""

import keras
import numpy as np
import pytest

from conftest import randomize
from keras_diffusion.models import DDPM
from keras_diffusion.networks import UNet


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _conditional_model(input_channel=True, cross_attention=True, **kwargs):
    network = UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                   num_heads=1, num_classes=10, class_input_channel=input_channel,
                   class_cross_attention=cross_attention)
    randomize(network)
    return DDPM(network, seed=3, **kwargs)


@pytest.mark.parametrize("input_channel, cross_attention",
                         [(True, False), (False, True), (True, True)])
def test_each_route_carries_the_class(input_channel, cross_attention):
    model = _conditional_model(input_channel, cross_attention)
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    a = _np(model.predict_noise(x, np.array([500, 500]), np.array([1, 1])))
    b = _np(model.predict_noise(x, np.array([500, 500]), np.array([7, 7])))
    assert np.abs(a - b).max() > 1e-4


def test_unet_needs_a_class_route():
    with pytest.raises(ValueError, match="route"):
        UNet(num_classes=10, class_input_channel=False, class_cross_attention=False)


def test_condition_dropout_rate():
    model = _conditional_model(cond_drop_prob=0.3)
    labels = np.zeros((20000,), "int32")
    dropped = _np(model.drop_labels(labels))
    assert set(np.unique(dropped)) == {0, 10}
    assert abs((dropped == 10).mean() - 0.3) < 0.015
    # A fresh draw drops other labels.
    assert not np.array_equal(dropped, _np(model.drop_labels(labels)))


def test_null_class_and_guidance_zero_give_the_unconditional_prediction():
    model = _conditional_model()
    x = np.random.default_rng(1).normal(size=(3, 28, 28, 1)).astype("float32")
    t = np.array(300)
    unconditional = _np(model.predict_noise(x, t))
    null = _np(model.predict_noise(x, t, np.full((3,), 10)))
    np.testing.assert_allclose(null, unconditional, atol=1e-6)
    guided_zero = _np(model.guided_noise(x, t, np.array([2, 5, 9]), 0.0))
    np.testing.assert_allclose(guided_zero, unconditional, atol=1e-5)


def test_guided_prediction_is_the_formula():
    model = _conditional_model()
    x = np.random.default_rng(2).normal(size=(2, 28, 28, 1)).astype("float32")
    t, labels, w = np.array(700), np.array([3, 8]), 4.0
    cond = _np(model.predict_noise(x, t, labels))
    uncond = _np(model.predict_noise(x, t))
    guided = _np(model.guided_noise(x, t, labels, w))
    np.testing.assert_allclose(guided, uncond + w * (cond - uncond), atol=1e-4)


def test_fit_with_labels_and_guided_generation(mnist_batch):
    images, labels = mnist_batch
    model = _conditional_model()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    history = model.fit(images[:64], labels[:64], batch_size=32, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    out = model.generate(4, num_steps=3, labels=[0, 1, 2, 3], guidance=2.0,
                         progress=False)
    assert out.shape == (4, 28, 28, 1)
    again = model.generate(4, num_steps=3, labels=[0, 1, 2, 3], guidance=2.0,
                           progress=False)
    np.testing.assert_array_equal(out, again)
    other = model.generate(4, num_steps=3, labels=[0, 1, 2, 3], guidance=5.0,
                           progress=False)
    assert np.abs(out - other).max() > 1e-4  # the weight reaches the compiled step


def test_fit_without_labels_is_a_clear_error(mnist_batch):
    images, _ = mnist_batch
    model = _conditional_model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="class-conditional"):
        model.fit(images[:32], batch_size=32, epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"labels": 10}, "0-9"),
    ({"labels": -1}, "0-9"),
    ({"labels": 3, "guidance": -1.0}, ">= 0"),
    ({"guidance": 2.0}, "needs class labels"),
])
def test_bad_labels_and_guidance(kwargs, message):
    model = _conditional_model()
    with pytest.raises(ValueError, match=message):
        model.generate(2, num_steps=2, progress=False, **kwargs)


def test_unconditional_model_refuses_labels(tiny_unet):
    with pytest.raises(ValueError, match="unconditional"):
        DDPM(tiny_unet).generate(2, num_steps=2, labels=3, progress=False)


def test_conditional_model_save_roundtrip(tmp_path):
    model = _conditional_model()
    path = str(tmp_path / "cfg.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    kwargs = dict(num_images=2, num_steps=3, labels=[4, 6], guidance=3.0,
                  progress=False)
    np.testing.assert_allclose(loaded.generate(**kwargs), model.generate(**kwargs),
                               atol=1e-5)
    assert loaded.cond_drop_prob == model.cond_drop_prob


@pytest.fixture
def conditional_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "cfg.keras"
    _conditional_model().save(str(path))
    return str(path)


def test_cli_class_and_guidance(conditional_file, tmp_path):
    from click.testing import CliRunner

    from keras_diffusion_cli.main import cli

    runner = CliRunner()
    out = tmp_path / "threes.npz"
    result = runner.invoke(cli, ["sample", "--model", conditional_file, "--class",
                                 "3", "--guidance", "4", "--num", "3", "--steps",
                                 "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    assert saved["images"].shape == (3, 28, 28, 1)
    assert saved["labels"].tolist() == [3, 3, 3]

    every = tmp_path / "every.npz"
    result = runner.invoke(cli, ["sample", "--model", conditional_file, "--num",
                                 "20", "--steps", "2", "--out", str(every)])
    assert result.exit_code == 0, result.output
    assert np.load(every)["labels"].tolist() == sorted(list(range(10)) * 2)

    # A count that does not divide among the classes is still exact.
    uneven = tmp_path / "uneven.npz"
    result = runner.invoke(cli, ["sample", "--model", conditional_file, "--num",
                                 "16", "--steps", "2", "--out", str(uneven)])
    assert result.exit_code == 0, result.output
    labels = np.load(uneven)["labels"].tolist()
    assert len(labels) == 16 and labels == sorted(labels)
    assert sorted(set(labels)) == list(range(10))


@pytest.mark.parametrize("args, match", [
    (["--class", "12"], "0-9"),
    (["--class", "-1"], "0-9"),
    (["--class", "3", "--guidance", "-1"], "--guidance must be >= 0"),
    (["--class", "3", "--guidance", "1e9"], "<= 20"),
])
def test_cli_rejects_bad_class_and_guidance(conditional_file, tmp_path, args, match):
    from click.testing import CliRunner

    from keras_diffusion_cli.main import cli

    result = CliRunner().invoke(cli, ["sample", "--model", conditional_file,
                                      "--out", str(tmp_path / "x.png")] + args)
    assert result.exit_code == 2, result.output
    assert match in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_cli_class_on_unconditional_model(tiny_unet, tmp_path_factory, tmp_path):
    from click.testing import CliRunner

    from keras_diffusion_cli.main import cli

    path = str(tmp_path_factory.mktemp("uncond") / "ddpm.keras")
    DDPM(tiny_unet).save(path)
    result = CliRunner().invoke(cli, ["sample", "--model", path, "--class", "3",
                                      "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2, result.output
    assert "unconditional" in result.output
    assert not list(tmp_path.iterdir())


def test_conditioning_is_resolved_once_with_errors_naming_parameters(tiny_unet):
    from keras_diffusion.guidance import Conditioning

    model = _conditional_model()
    conditioning = Conditioning.resolve(model, 3, labels=4, guidance=2.5)
    np.testing.assert_array_equal(conditioning.labels, [4, 4, 4])
    assert conditioning.guidance == 2.5 and conditioning.classifier is None
    context = conditioning.context(1, 3)
    np.testing.assert_array_equal(_np(context["labels"]), [4, 4])
    assert float(_np(context["guidance"])) == 2.5
    assert Conditioning.resolve(model, 3).context() is None
    assert Conditioning.resolve(model, 2, labels=[1, 2]).guidance == 1.0
    for kwargs, message in [
        ({"labels": [1, 2]}, "`labels` must be one int class or one per image"),
        ({"labels": 1.5}, "`labels` must be one int class"),
        ({"labels": "a"}, "`labels` must be one int class"),
        ({"labels": 10}, "`labels` must be a class in 0-9"),
        ({"labels": 1, "guidance": 21.0}, "`guidance` must be"),
        ({"labels": 1, "classifier_scale": 2.0}, "`classifier_scale` needs"),
    ]:
        with pytest.raises(ValueError, match=message):
            Conditioning.resolve(model, 3, **kwargs)
    with pytest.raises(ValueError, match="`labels` and `guidance` need a "
                                         "class-conditional model"):
        Conditioning.resolve(DDPM(tiny_unet), 3, labels=1, guidance=2.0)
