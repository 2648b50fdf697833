"""The user scripts in `examples/` and the Python block of README.md run, in a
fresh process under the current KERAS_BACKEND, with tiny settings."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT

TINY = ["--limit", "32", "--batch-size", "16", "--epochs", "1", "--widths",
        "8", "8", "--sampling-steps", "2"]

# The README's Python blocks run with these replacements (README text, tiny
# value); each must occur exactly once, so editing the README in a way
# that breaks this test's assumptions fails loudly.
README_TINY = [
    ('"path/to/mnist"', None),  # -> the MNIST directory of the tests
    ("to_model_range(images)", "to_model_range(images[:32])"),
    ("widths=(16, 32, 64)", "widths=(8, 8, 8)"),
    ("batch_size=128", "batch_size=16"),
    ("epochs=10", "epochs=1"),
    ("num_steps=50", "num_steps=2"),
]


def _run(args, cwd, timeout=1800):  # about 30 s each on an idle 2-core CPU
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(),
               TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


# (NumPy arrays go to `fit` in the flow example and the README's block.)
@pytest.mark.parametrize("script, flags", [
    ("train_and_sample.py", ["--num-images", "4", "--tf-data", "--save",
                             "model.keras"]),
    ("flow_from_python.py", ["--per-class", "1", "--conditional"]),
])
def test_example_runs(mnist_dir, tmp_path, script, flags):
    out = tmp_path / "grid.png"
    stdout = _run([os.path.join(ROOT, "examples", script), "--data", mnist_dir,
                   "--out", str(out)] + TINY + flags, cwd=tmp_path)
    assert f"Wrote {out}" in stdout
    assert _is_png(out)
    if "--save" in flags:
        assert (tmp_path / "model.keras").is_file()


def test_write_image_folder_writes_what_load_images_reads_back(tmp_path):
    from keras_diffusion.data import load_images

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 8, 8, 3)).astype("uint8")
    labels = np.arange(12) % 3
    np.savez(tmp_path / "set.npz", images=images, labels=labels)
    script = os.path.join(ROOT, "examples", "write_image_folder.py")
    stdout = _run([script, "set.npz", "pngs", "--classes", "0", "2", "--num", "6"],
                  cwd=tmp_path)
    assert "Wrote 6 images in 2 class folders" in stdout
    assert sorted(os.listdir(tmp_path / "pngs")) == ["0", "2"]
    kept = np.flatnonzero(np.isin(labels, [0, 2]))[:6]
    kept = kept[np.argsort(labels[kept], kind="stable")]  # read class by class
    read = load_images(tmp_path / "pngs")
    # Sub-folders in sorted order are the classes: "0" -> 0, "2" -> 1.
    np.testing.assert_array_equal(read.images, images[kept])
    np.testing.assert_array_equal(read.labels, labels[kept] // 2)
    # An existing folder is refused, and nothing is written.
    result = subprocess.run([sys.executable, script, "set.npz", "pngs"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "exists" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["pngs", "set.npz"]


def readme_python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_python_block_runs(mnist_dir, tmp_path):
    blocks = readme_python_blocks()
    assert blocks, "README.md has no ```python block"
    code = "\n".join(blocks)
    for text, tiny in README_TINY:
        assert code.count(text) == 1, f"README's Python should hold {text!r} once"
        code = code.replace(text, repr(mnist_dir) if tiny is None else tiny)
    code += "\nassert samples.shape == (16, 28, 28, 1), samples.shape\n"
    script = tmp_path / "readme.py"
    script.write_text(code)
    _run([str(script)], cwd=tmp_path)
    assert (tmp_path / "my_ddpm.keras").is_file()
