import gzip
import os
import struct

import keras
import numpy as np
import pytest

from keras_diffusion.data import DataError
from keras_diffusion.data import load_mnist
from keras_diffusion.data import make_dataset
from keras_diffusion.data import read_idx
from keras_diffusion.data import to_model_range


def _write_idx(path, array):
    codes = {np.dtype("uint8"): 0x08, np.dtype(">i4"): 0x0C}
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _write_mnist_dir(directory, count=5, shape=(28, 28)):
    images = np.random.default_rng(0).integers(0, 256, (count,) + shape, "uint8")
    labels = np.arange(count, dtype="uint8") % 10
    for split in ("train", "t10k"):
        _write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return images, labels


def test_real_mnist_loads(mnist_dir):
    images, labels = load_mnist(mnist_dir, "train")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]
    test_images, _ = load_mnist(mnist_dir, "test")
    assert test_images.shape == (10000, 28, 28)


def test_idx_dir_and_npz_agree(tmp_path):
    images, labels = _write_mnist_dir(tmp_path)
    loaded, loaded_labels = load_mnist(tmp_path, "train")
    np.testing.assert_array_equal(loaded, images)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=images, y_train=labels, x_test=images, y_test=labels)
    from_npz, npz_labels = load_mnist(npz, "test")
    np.testing.assert_array_equal(from_npz, images)
    np.testing.assert_array_equal(npz_labels, loaded_labels)


def test_scaling_to_model_range():
    scaled = to_model_range(np.array([[[0, 255]]], "uint8"))
    assert scaled.shape == (1, 1, 2, 1)
    np.testing.assert_allclose(scaled.ravel(), [-1.0, 1.0])
    # Any size and channel count; [0, 1] floats are not taken for 0-255.
    rgb = to_model_range(np.full((2, 5, 7, 3), 0.5, "float32"))
    assert rgb.shape == (2, 5, 7, 3)
    np.testing.assert_allclose(rgb, 0.0)
    with pytest.raises(DataError, match="ambiguous"):
        to_model_range(np.full((1, 2, 2), 1.5))


def test_missing_path_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_empty_directory(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_wrong_image_shape(tmp_path):
    _write_mnist_dir(tmp_path, shape=(32, 32))
    with pytest.raises(DataError, match=r"expected \(N, 28, 28\)"):
        load_mnist(tmp_path)


def test_truncated_idx(tmp_path):
    _write_mnist_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = gzip.open(path).read()
    with gzip.open(path, "wb") as f:
        f.write(data[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_mnist(tmp_path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "junk-idx3-ubyte"
    path.write_bytes(os.urandom(64))
    with pytest.raises(DataError):
        read_idx(str(path))


def test_npz_missing_keys(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, y_train=np.zeros(2))
    with pytest.raises(DataError, match="x_train"):
        load_mnist(path)
    np.savez(path, x_train=np.zeros((2, 28, 28), "uint8"), y_train=np.zeros(2))
    with pytest.raises(DataError, match="lacks x_test"):
        load_mnist(path, "test")


def test_npz_as_kd_sample_writes_it(tmp_path):
    """`images` in [0, 1] (float32 (N, 28, 28, 1)) with `labels`: read as
    0-255, not cast to zeros."""
    pixels = np.random.default_rng(0).integers(0, 256, (6, 28, 28), "uint8")
    path = tmp_path / "samples.npz"
    np.savez(path, images=(pixels / 255.0).astype("float32")[..., None],
             labels=np.arange(6))
    images, labels = load_mnist(path)
    np.testing.assert_array_equal(images, pixels)
    assert labels.tolist() == list(range(6))


def test_offline_tfds_names_the_data_flag(monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:  # a closed port on this machine
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KD_NETWORK_PROBE", f"127.0.0.1:{port}")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="no network.*--data"):
        load_mnist(None)
    assert not list(tmp_path.iterdir())


def test_dataset_batches():
    images = np.zeros((10, 28, 28, 1), "float32")
    dataset = make_dataset(images, np.arange(10), batch_size=4, repeat=False)
    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == 2 and batches[0][0].shape == (4, 28, 28, 1)
    with pytest.raises(ValueError, match="larger than the data"):
        make_dataset(images, batch_size=11)


def test_without_tensorflow_batches_come_from_arrays(monkeypatch):
    """Where TensorFlow is not installed, `make_dataset` gives the same
    full batches from the arrays: each pass a new order of every row (the
    last partial batch dropped), labels and dict entries kept together."""
    import sys

    from keras_diffusion.data.pipeline import ArrayBatches

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import fails
    rows = np.arange(10, dtype="float32").reshape(10, 1, 1, 1)
    dataset = make_dataset(rows, labels=np.arange(10) * 10, batch_size=4, seed=1)
    assert isinstance(dataset, ArrayBatches) and dataset.num_batches is None
    passes = []
    for first in (0, 2):  # two passes of 2 batches each
        batches = [dataset[first], dataset[first + 1]]
        for images, labels in batches:
            assert images.shape == (4, 1, 1, 1) and labels.dtype == np.int32
            np.testing.assert_array_equal(labels, images[:, 0, 0, 0] * 10)
        seen = np.concatenate([images[:, 0, 0, 0] for images, _ in batches])
        assert len(set(seen)) == 8  # no row twice within a pass
        passes.append(seen)
    assert not np.array_equal(passes[0], passes[1])  # reshuffled
    again = make_dataset(rows, labels=np.arange(10) * 10, batch_size=4, seed=1)
    np.testing.assert_array_equal(again[2][0], dataset[2][0])  # seeded

    pairs = make_dataset({"noise": rows, "images": -rows}, batch_size=5,
                         shuffle=False, repeat=False)
    assert pairs.num_batches == 2
    np.testing.assert_array_equal(pairs[1]["images"], -pairs[1]["noise"])
    np.testing.assert_array_equal(pairs[1]["noise"][:, 0, 0, 0], [5, 6, 7, 8, 9])


def test_a_model_fits_on_batches_made_without_tensorflow():
    from keras_diffusion.data.pipeline import ArrayBatches

    rows = np.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    dataset = ArrayBatches((rows, rows), batch_size=4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(dataset, epochs=2, steps_per_epoch=5, verbose=0,
                        shuffle=False)
    assert int(model.optimizer.iterations) == 10
    assert len(history.history["loss"]) == 2


def test_without_tensorflow_training_the_evaluator_says_it_needs_it(
        monkeypatch, tmp_path):
    """Its augmentation is a tf.data pipeline: refused before anything is
    written, with what to do."""
    import sys

    from keras_diffusion.app.train_evaluator import train_evaluator

    _write_mnist_dir(tmp_path, count=20)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # not installed
    out = tmp_path / "judge"
    with pytest.raises(ValueError, match="needs TensorFlow.*pip install tensorflow"):
        train_evaluator(data=str(tmp_path), out_dir=str(out), verbose=0)
    assert not out.exists()
