"""`load_images` on every kind of source, and its errors.

Image folders, `.npz` files of every accepted layout and value range,
MNIST IDX directories and tensorflow-datasets (through
`tfds.testing.mock_data`, and a download that fails without the internet).
No test reaches the network: an autouse fixture points the network check
(`KD_NETWORK_PROBE`) at a closed port on 127.0.0.1 and tensorflow-datasets
at an empty data directory.
"""

import os
import socket
import time

import numpy as np
import pytest
from click.testing import CliRunner

from keras_diffusion.data import DataError
from keras_diffusion.data import describe_data
from keras_diffusion.data import load_images
from keras_diffusion.data import load_mnist
from keras_diffusion.data import to_model_range
from keras_diffusion.data import tfds_source
from keras_diffusion_cli.main import cli

RNG = np.random.default_rng(0)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    """Every test here: the network check goes to a closed local port and
    tensorflow-datasets writes to an empty folder of its own."""
    data_dir = tmp_path_factory.mktemp("tfds")
    monkeypatch.setenv(tfds_source.PROBE_ENV, f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture
def online(monkeypatch):
    """The network check passes: it connects to a listening local socket."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        monkeypatch.setenv(tfds_source.PROBE_ENV,
                           f"127.0.0.1:{server.getsockname()[1]}")
        yield


def _write(path, image):
    import tensorflow as tf

    encode = tf.io.encode_png if str(path).endswith(".png") else (
        lambda x: tf.io.encode_jpeg(x, quality=100))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(encode(image).numpy())


def _images(count, height, width, channels):
    return RNG.integers(0, 256, (count, height, width, channels), "uint8")


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """6 RGB 32x32 PNGs, 3 in cat/, 3 in dog/, plus files that are skipped."""
    root = tmp_path_factory.mktemp("pets")
    images = _images(6, 32, 32, 3)
    for i, image in enumerate(images):
        _write(str(root / ("cat" if i < 3 else "dog") / f"{i}.png"), image)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _write(str(root / ".hidden" / "x.png"), images[0])
    return str(root), images


# --- image folders ----------------------------------------------------------


def test_folder_with_class_sub_folders(pets):
    root, images = pets
    data = load_images(root)
    np.testing.assert_array_equal(data.images, images)
    assert data.images.dtype == np.uint8
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.labels.dtype == np.int64
    assert data.class_names == ["cat", "dog"]
    assert describe_data(data) == (
        f"6 images 32x32x3 (uint8 0-255) from {root}, 2 classes (cat, dog)")


def test_flat_folder_of_grayscale_images_is_unlabelled(tmp_path):
    images = _images(6, 28, 28, 1)
    for i, image in enumerate(images):
        _write(str(tmp_path / f"digit_{i}.png"), image)
    data = load_images(tmp_path)
    np.testing.assert_array_equal(data.images, images)
    assert data.labels is None and data.class_names is None
    assert describe_data(data).endswith("28x28x1 (uint8 0-255) from "
                                        f"{tmp_path}, unlabelled")
    # The same folder as MNIST: images, but no labels.
    with pytest.raises(DataError, match="no labels"):
        load_mnist(tmp_path)


def test_jpeg_files(tmp_path):
    image = np.tile(np.linspace(0, 255, 32, dtype="uint8")[None, :, None],
                    (32, 1, 3))
    _write(str(tmp_path / "a" / "smooth.jpg"), image)
    _write(str(tmp_path / "b" / "smooth.JPEG"), image)
    data = load_images(tmp_path)
    assert data.images.shape == (2, 32, 32, 3) and data.labels.tolist() == [0, 1]
    assert np.abs(data.images.astype(int) - image).mean() < 3


def test_resize_and_channels(pets, tmp_path):
    root, images = pets
    data = load_images(root, image_size=16, channels=1)
    assert data.images.shape == (6, 16, 16, 1)
    # Resizing a constant image keeps its value; pure red is 76 in luma.
    _write(str(tmp_path / "red.png"), np.full((20, 30, 3), (255, 0, 0), "uint8"))
    _write(str(tmp_path / "gray.png"), np.full((8, 8, 1), 200, "uint8"))
    data = load_images(tmp_path, image_size=(12, 10), channels=1)
    assert data.images.shape == (2, 12, 10, 1)
    assert data.images[:, :, :, 0].min(axis=(1, 2)).tolist() == [200, 76]
    assert data.images[:, :, :, 0].max(axis=(1, 2)).tolist() == [200, 76]
    rgb = load_images(tmp_path, image_size=8, channels=3).images
    assert rgb.shape == (2, 8, 8, 3)
    assert rgb[0, 0, 0].tolist() == [200, 200, 200]  # gray.png, sorted first
    assert rgb[1, 0, 0].tolist() == [255, 0, 0]


def test_mixed_sizes_need_a_resize(tmp_path):
    _write(str(tmp_path / "a.png"), _images(1, 32, 32, 3)[0])
    _write(str(tmp_path / "b.png"), _images(1, 28, 28, 3)[0])
    with pytest.raises(DataError, match=r"different sizes.*a\.png.*32x32.*b\.png"
                                        r".*28x28.*image_size"):
        load_images(tmp_path)
    assert load_images(tmp_path, image_size=24).images.shape == (2, 24, 24, 3)


def test_mixed_channels_need_a_conversion(tmp_path):
    _write(str(tmp_path / "gray.png"), _images(1, 8, 8, 1)[0])
    _write(str(tmp_path / "rgb.png"), _images(1, 8, 8, 3)[0])
    with pytest.raises(DataError, match=r"channel counts.*gray\.png.*rgb\.png"):
        load_images(tmp_path)
    assert load_images(tmp_path, channels=3).images.shape == (2, 8, 8, 3)


def test_alpha_channel_is_dropped(tmp_path):
    image = _images(1, 8, 8, 4)[0]
    _write(str(tmp_path / "rgba.png"), image)
    np.testing.assert_array_equal(load_images(tmp_path).images[0], image[..., :3])


def test_unreadable_image_is_named(tmp_path):
    _write(str(tmp_path / "cat" / "good.png"), _images(1, 8, 8, 3)[0])
    bad = tmp_path / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(DataError, match=r"Could not read image .*broken\.png"):
        load_images(tmp_path)
    bad.write_bytes(b"")
    with pytest.raises(DataError, match=r"broken\.png"):
        load_images(tmp_path)


def test_empty_folders(tmp_path):
    with pytest.raises(DataError, match="has no images"):
        load_images(tmp_path)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no image here")
    with pytest.raises(DataError, match="has no images"):
        load_images(tmp_path)


def test_images_beside_class_folders_are_refused(tmp_path):
    _write(str(tmp_path / "cat" / "0.png"), _images(1, 8, 8, 3)[0])
    _write(str(tmp_path / "stray.png"), _images(1, 8, 8, 3)[0])
    with pytest.raises(DataError, match=r"top level \('stray\.png'\)"):
        load_images(tmp_path)


# --- .npz files and value ranges --------------------------------------------


def _npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_npz_images_and_labels(tmp_path):
    images = _images(6, 32, 32, 3)
    labels = np.array([2, 0, 1, 1, 0, 2], "uint8")
    data = load_images(_npz(tmp_path, images=images, labels=labels))
    np.testing.assert_array_equal(data.images, images)
    assert data.labels.tolist() == labels.tolist()
    assert data.labels.dtype == np.int64
    assert describe_data(data) == (
        f"6 images 32x32x3 (uint8 0-255) from {tmp_path / 'data.npz'}, 3 classes")
    # Labels as keras.datasets gives them, (N, 1); images without labels.
    data = load_images(_npz(tmp_path, images=images, labels=labels[:, None]))
    assert data.labels.tolist() == labels.tolist()
    assert load_images(_npz(tmp_path, images=images)).labels is None


def test_npz_single_array_and_mnist_layout(tmp_path):
    images = _images(4, 28, 28, 1)
    path = tmp_path / "one.npz"
    np.savez(path, images[..., 0])  # saved as arr_0
    data = load_images(path)
    np.testing.assert_array_equal(data.images, images)
    assert data.labels is None
    test_images = _images(3, 28, 28, 1)
    path = _npz(tmp_path, x_train=images, y_train=np.arange(4),
                x_test=test_images, y_test=np.arange(3))
    np.testing.assert_array_equal(load_images(path, "test").images, test_images)
    with pytest.raises(DataError, match="choose 'train' or 'test'"):
        load_images(path, "validation")


@pytest.mark.parametrize("dtype, scale, offset, value_range", [
    ("float32", 1 / 255, 0.0, "float32 [0, 1]"),
    ("float64", 2 / 255, -1.0, "float64 [-1, 1]"),
    ("float32", 1.0, 0.0, "float32 0-255"),
    ("int64", 1, 0, "int64 0-255"),
])
def test_value_ranges_are_scaled(tmp_path, dtype, scale, offset, value_range):
    pixels = _images(5, 8, 8, 1)
    pixels[0, 0, 0, 0], pixels[0, 0, 1, 0] = 0, 255  # the range's ends
    images = (pixels * scale + offset).astype(dtype)
    data = load_images(_npz(tmp_path, images=images))
    np.testing.assert_array_equal(data.images, pixels)
    assert data.value_range == value_range
    assert f"({value_range})" in describe_data(data)


def test_unit_floats_reach_training_spanning_minus_one_to_one(tmp_path):
    """[0, 1] floats (x / 255) through load_mnist and to_model_range, as
    training reads them: they span [-1, 1], not all -1 (black)."""
    pixels = _images(8, 28, 28, 1)[..., 0]
    pixels[0, 0, :2] = (0, 255)
    unit = (pixels / 255.0).astype("float32")
    path = _npz(tmp_path, x_train=unit, y_train=np.arange(8), x_test=unit,
                y_test=np.arange(8))
    images, _ = load_mnist(path)
    model_input = to_model_range(images)
    assert model_input.min() == -1.0 and model_input.max() == 1.0
    np.testing.assert_allclose(model_input[..., 0], unit * 2 - 1, atol=1e-6)
    data = load_images(path)
    np.testing.assert_allclose(to_model_range(data.images)[..., 0], unit * 2 - 1,
                               atol=1e-6)
    # to_model_range reads the range itself too.
    np.testing.assert_allclose(to_model_range(unit)[..., 0], unit * 2 - 1)
    np.testing.assert_allclose(to_model_range(unit * 2 - 1)[..., 0], unit * 2 - 1)


@pytest.mark.parametrize("images, match", [
    (np.linspace(0, 1.5, 64).reshape(1, 8, 8), r"from 0 to 1\.5: ambiguous"),
    (np.linspace(-3, 3, 64).reshape(1, 8, 8), r"from -3 to 3: not a pixel range"),
    (np.linspace(-1, 200, 64).reshape(1, 8, 8), r"from -1 to 200: not a pixel"),
    (np.linspace(0, 300, 64).reshape(1, 8, 8), r"from 0 to 300: not a pixel"),
    (np.arange(64, dtype="int16").reshape(1, 8, 8) * 5, r"must lie in 0-255"),
    (np.arange(64).reshape(1, 8, 8) % 2, r"only 0 and 1"),
    (np.full((1, 8, 8), np.nan), r"NaN or Inf"),
    (np.zeros((1, 8, 8), bool), r"dtype bool"),
    (np.zeros((2, 3, 8, 8)), r"Channels first"),
    (np.zeros((2, 8)), r"expected \(N, H, W\)"),
    (np.zeros((0, 8, 8)), r"hold no images"),
])
def test_bad_images_name_the_file_and_range(tmp_path, images, match):
    with pytest.raises(DataError, match=match) as error:
        load_images(_npz(tmp_path, "bad.npz", images=images))
    assert "bad.npz" in str(error.value)


@pytest.mark.parametrize("labels, match", [
    (np.arange(5), r"5 labels \(shape \(5,\)\) for 6 images"),
    (np.arange(12).reshape(6, 2), r"shape \(6, 2\)"),
    (np.array([0, 1, 2, -1, 0, 1]), r"whole numbers >= 0.*from -1 to 2"),
    (np.array([0, 1, 2.5, 1, 0, 1]), r"whole numbers >= 0"),
    (np.array(list("abcdef")), r"dtype <U1"),
])
def test_labels_that_do_not_match_the_images(tmp_path, labels, match):
    path = _npz(tmp_path, "bad_labels.npz", images=_images(6, 8, 8, 3),
                labels=labels)
    with pytest.raises(DataError, match=match) as error:
        load_images(path)
    assert "bad_labels.npz" in str(error.value)


def test_npz_without_a_known_layout(tmp_path):
    path = _npz(tmp_path, a=np.zeros((2, 8, 8)), b=np.zeros(2))
    with pytest.raises(DataError, match=r"holds the arrays \['a', 'b'\].*x_train"):
        load_images(path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        load_images(None, image_size=0)
    with pytest.raises(ValueError, match="image_size"):
        load_images(None, image_size=(8, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        load_images(None, channels=2)


def test_mnist_idx_directory(mnist_dir):
    data = load_images(mnist_dir, "test")
    assert data.images.shape == (10000, 28, 28, 1) and data.labels[0] == 7
    assert describe_data(data) == (
        f"10000 images 28x28x1 (uint8 0-255) from {mnist_dir}, 10 classes")
    resized = load_images(mnist_dir, "test", image_size=32, channels=3)
    assert resized.images.shape == (10000, 32, 32, 3)
    with pytest.raises(DataError, match="choose 'train' or 'test'"):
        load_images(mnist_dir, "validation")


def test_mnist_through_load_mnist_must_be_28x28(tmp_path, pets):
    with pytest.raises(DataError, match=r"shape \(6, 32, 32, 3\).*\(N, 28, 28\)"):
        load_mnist(pets[0])
    path = _npz(tmp_path, images=_images(3, 28, 28, 1), labels=[0, 5, 10])
    with pytest.raises(DataError, match="0-9"):
        load_mnist(path)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="does not exist.*folder of images"):
        load_images(tmp_path / "nowhere")


# --- tensorflow-datasets ----------------------------------------------------


def test_tfds_through_mock_data(online):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=5):
        images, labels = load_mnist(None)
        assert images.shape == (5, 28, 28) and images.dtype == np.uint8
        assert labels.dtype == np.int64 and labels.max() <= 9
        data = load_images("tfds:fashion_mnist:test")
        assert data.images.shape == (5, 28, 28, 1)
        assert data.class_names[0] == "T-shirt/top" and len(data.class_names) == 10
        assert describe_data(data).startswith(
            "5 images 28x28x1 (uint8 0-255) from tfds:fashion_mnist:test, "
            "10 classes (T-shirt/top, ")
        data = load_images("tfds:cifar10", split="test", image_size=16,
                           channels=1)
        assert data.images.shape == (5, 16, 16, 1)
        assert data.source == "tfds:cifar10:test"


def test_tfds_unknown_name():
    with pytest.raises(DataError, match="cannot load 'no_such_dataset_kd'"):
        load_images("tfds:no_such_dataset_kd")
    with pytest.raises(DataError, match="names no dataset"):
        load_images("tfds:")


def test_offline_fails_fast_naming_the_data_flag(offline):
    start = time.monotonic()
    with pytest.raises(DataError) as error:
        load_mnist(None)
    assert time.monotonic() - start < 30
    message = str(error.value)
    assert "Could not download 'mnist'" in message and "no network" in message
    assert "--data" in message and message.endswith(".")  # whole, not cut
    assert not os.listdir(offline)  # no dataset folder left behind


def test_network_check_times_out(monkeypatch):
    def no_answer(*args, **kwargs):
        time.sleep(2)
        raise OSError("answered too late")

    monkeypatch.setattr(tfds_source.socket, "create_connection", no_answer)
    monkeypatch.setattr(tfds_source, "PROBE_TIMEOUT", 0.2)
    start = time.monotonic()
    with pytest.raises(DataError, match=r"no answer within 0\.2 s.*--data"):
        tfds_source.check_network("'mnist'")
    assert time.monotonic() - start < 1.5


def test_network_check_target(monkeypatch):
    """Which host the check would connect to (no connection is made)."""
    monkeypatch.delenv(tfds_source.PROBE_ENV)
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert tfds_source._probe_target() == ("storage.googleapis.com", 443)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:3128")
    assert tfds_source._probe_target() == ("127.0.0.1", 3128)
    monkeypatch.setenv(tfds_source.PROBE_ENV, "")
    assert tfds_source._probe_target() is None
    monkeypatch.setenv(tfds_source.PROBE_ENV, "localhost")
    with pytest.raises(ValueError, match="HOST:PORT"):
        tfds_source._probe_target()


_BUILDERS = {}


def _unreachable_builder(port):
    """A tensorflow-datasets dataset whose download URL is a closed local
    port (registered once per process)."""
    import tensorflow_datasets as tfds

    if "class" not in _BUILDERS:
        class KdTestUnreachable(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                return tfds.core.DatasetInfo(
                    builder=self,
                    features=tfds.features.FeaturesDict({
                        "image": tfds.features.Image(shape=(8, 8, 1)),
                        "label": tfds.features.ClassLabel(num_classes=2)}),
                    supervised_keys=("image", "label"))

            def _split_generators(self, dl_manager):
                path = dl_manager.download(
                    f"http://127.0.0.1:{_BUILDERS['port']}/images.npz")
                return {"train": self._generate_examples(path)}

            def _generate_examples(self, path):
                yield 0, {"image": np.zeros((8, 8, 1), "uint8"), "label": 0}

        _BUILDERS["class"] = KdTestUnreachable
    _BUILDERS["port"] = port
    return "kd_test_unreachable"


def test_failed_download_removes_the_folders_it_made(offline, online,
                                                      monkeypatch):
    from tensorflow_datasets.core.download import downloader

    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)  # fail at once
    name = _unreachable_builder(_closed_port())
    (offline / "downloads" / "older").mkdir(parents=True)
    (offline / "mine").mkdir()
    with pytest.raises(DataError) as error:
        load_images(f"tfds:{name}")
    message = str(error.value)
    assert f"Could not download '{name}'" in message and "127.0.0.1" in message
    assert "--data" in message
    assert sorted(os.listdir(offline)) == ["downloads", "mine"]
    assert os.listdir(offline / "downloads") == ["older"]


def test_kd_train_offline_exits_2(tmp_path):
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["train", "ddpm", "--max-steps", "1",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert time.monotonic() - start < 60
    assert "no network" in result.output and "--data" in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())
