"""No TensorFlow C++ start-up lines on stderr (`kd --verbose` shows them)."""

import os
import re
import subprocess
import sys

import keras
import pytest

START_UP_LINE = re.compile(
    r"^(WARNING: All log messages before absl|[IWE]0000 )", re.MULTILINE)


def _env(**variables):
    env = {name: value for name, value in os.environ.items()
           if name not in ("TF_CPP_MIN_LOG_LEVEL", "KD_TF_LOGS")}
    env.update(variables)
    return env


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from keras_diffusion.models import DDPM
    from keras_diffusion.networks import UNet

    path = tmp_path_factory.mktemp("quiet") / "ddpm.keras"
    DDPM(UNet(widths=(8,), attention_levels=(), embedding_dim=16,
              num_heads=1)).save(str(path))
    return str(path)


def _python(*args):
    """Runs `python ARGS` without the log variables; returns its stderr."""
    result = subprocess.run([sys.executable, *args], env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


def _kd_sample(model_file, tmp_path, *flags):
    return _python("-m", "keras_diffusion_cli.main", *flags, "sample", "--model",
                   model_file, "--num", "2", "--steps", "2",
                   "--out", str(tmp_path / "x.png"))


def test_kd_sample_prints_no_start_up_lines(model_file, tmp_path):
    stderr = _kd_sample(model_file, tmp_path)
    assert not START_UP_LINE.search(stderr), stderr[-2000:]


def test_import_keras_diffusion_prints_no_start_up_lines():
    # Under any backend, a later import of TensorFlow (tf.data does one),
    # after a `find_spec` probe as Keras and tensorflow-datasets make.
    code = ("import importlib.util, keras_diffusion, keras\n"
            "print(keras.ops.ones((2,)))\n"
            "assert importlib.util.find_spec('tensorflow')\n"
            "import tensorflow as tf\n"
            "print(tf.ones((2,)))\n")
    stderr = _python("-c", code)
    assert not START_UP_LINE.search(stderr), stderr[-2000:]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="only TensorFlow prints start-up lines")
def test_verbose_shows_them(model_file, tmp_path):
    """The lines exist, and the filter is what hides them."""
    stderr = _kd_sample(model_file, tmp_path, "--verbose")
    assert START_UP_LINE.search(stderr), stderr[-2000:]


def test_other_stderr_output_of_the_import_is_kept():
    """Only the start-up lines go: anything else written to stderr while
    TensorFlow is imported comes through."""
    code = ("import os, sys\n"
            "from keras_diffusion.utils.quiet_tensorflow import start_up_lines_filtered\n"
            "with start_up_lines_filtered():\n"
            "    os.write(2, b'I0000 00:00:17.5 port.cc:153] noise\\n')\n"
            "    os.write(2, b'a real error\\n')\n")
    assert _python("-c", code) == "a real error\n"
