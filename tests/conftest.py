"""Shared fixtures. Run the suite once per backend:

    KERAS_BACKEND=tensorflow pytest tests   # or jax, or torch

`tests/run_all_backends.sh` does all three.
"""

import os

import keras
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_DIR = os.environ.get(
    "KD_MNIST_DIR", os.path.join(ROOT, "..", "shared", "data", "mnist")
)
BACKENDS = ("tensorflow", "jax", "torch")


def pytest_report_header(config):
    return f"keras {keras.__version__}, KERAS_BACKEND={keras.backend.backend()}"


@pytest.fixture(scope="session")
def mnist_dir():
    if not os.path.isfile(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz")):
        pytest.fail(
            f"Real MNIST not found at {MNIST_DIR}; set KD_MNIST_DIR to a "
            "directory with the four IDX files."
        )
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist_batch(mnist_dir):
    """256 real training digits in [-1, 1] and their labels."""
    from keras_diffusion.data import load_mnist
    from keras_diffusion.data import to_model_range

    images, labels = load_mnist(mnist_dir, "train")
    return to_model_range(images[:256]), labels[:256]


@pytest.fixture
def tiny_unet():
    from keras_diffusion.networks import UNet

    return UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                num_heads=1)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    np.random.seed(0)


def randomize(model, scale=0.2, seed=0):
    """Adds noise to every weight, so that zero-initialized layers (which
    make a new network output zeros) produce informative outputs."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        value = keras.ops.convert_to_numpy(variable)
        variable.assign(value + rng.normal(0, scale, value.shape).astype("float32"))


# A UNet small enough that the tests of training mechanics (resuming, FID
# while training) spend their time on those, not on the network.
TINY_UNET = {"image_shape": (28, 28, 1), "widths": (8, 16), "blocks_per_level": 1,
             "attention_levels": (1,), "embedding_dim": 32, "num_heads": 1}


@pytest.fixture
def quick_train(monkeypatch):
    """`training.train` of the ddpm recipe with `TINY_UNET`, eager under
    TensorFlow (tracing costs TF ~20 s and is not under test here;
    test_resume::test_killed_training_resumes_from_its_last_step trains
    the full recipe compiled), no sample grids."""
    from keras_diffusion.app import recipes
    from keras_diffusion.app import train as training

    monkeypatch.setitem(recipes.RECIPES, "ddpm",
                        recipes.RECIPES["ddpm"].replace(network=TINY_UNET))
    train_eagerly_under_tensorflow(monkeypatch)

    def train(data, out, **kwargs):
        return training.train("ddpm", data=str(data), batch_size=16,
                              out_dir=str(out), sample_every=0, verbose=1,
                              **kwargs)

    return train


def train_eagerly_under_tensorflow(monkeypatch):
    """Makes `app.train` build its models to train eagerly under TensorFlow
    (tracing a train step costs TF ~20 s of CPU)."""
    from keras_diffusion.app import train as training

    real_build = training.build_model

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.run_eagerly = keras.backend.backend() == "tensorflow"
        return model

    monkeypatch.setattr(training, "build_model", build)
