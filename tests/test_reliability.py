"""Reliability: bad input, NaN losses, atomic outputs, reproducibility.

See docs/reliability.md for the table of faults these tests try. Bad input
must exit with status 2 and one `Error: ...` line that says what was wrong
and what is accepted, with no traceback and no output file.
"""

import dataclasses
import gzip
import os
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT
from conftest import TINY_UNET
from conftest import randomize
from keras_diffusion.data import load_mnist
from keras_diffusion_cli.main import cli

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --- shared files ---------------------------------------------------------


def _tiny_unet(**kwargs):
    from keras_diffusion.networks import UNet

    return UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                num_heads=1, **kwargs)


@pytest.fixture(scope="module")
def files(tmp_path_factory, mnist_dir):
    """Models and data files the tests read (never written to by them)."""
    import keras_diffusion  # noqa: F401
    from keras_diffusion.models import DDPM
    from keras_diffusion.models import VAE
    from keras_diffusion.networks import VAEDecoder
    from keras_diffusion.networks import VAEEncoder

    d = tmp_path_factory.mktemp("inputs")
    keras.utils.set_random_seed(0)
    ddpm = DDPM(_tiny_unet())
    randomize(ddpm)
    ddpm.save(str(d / "ddpm.keras"))
    cond = DDPM(_tiny_unet(num_classes=10, class_input_channel=True))
    randomize(cond)
    cond.save(str(d / "cond.keras"))
    VAE(VAEEncoder(widths=(8, 8, 8)), VAEDecoder(widths=(8, 8, 8))).save(
        str(d / "vae.keras"))

    (d / "empty.keras").write_bytes(b"")
    (d / "model.txt").write_text("not a model\n")
    np.savez(d / "not_a_model.npz", x=np.zeros(3))
    os.replace(d / "not_a_model.npz", d / "zip.keras")  # a zip, not Keras
    (d / "folder.keras").mkdir()

    images, labels = load_mnist(mnist_dir, "train")
    np.savez(d / "small.npz", x_train=images[:32], y_train=labels[:32],
             x_test=images[:32], y_test=labels[:32])
    # 30x30: the networks halve the images twice, so sizes are multiples of 4.
    np.savez(d / "wrong_shape.npz", x_train=np.zeros((8, 30, 30), "uint8"),
             y_train=np.zeros(8, "uint8"), x_test=np.zeros((8, 30, 30), "uint8"),
             y_test=np.zeros(8, "uint8"))
    # Negative labels: not class indices.
    np.savez(d / "bad_labels.npz", x_train=images[:8], y_train=labels[:8] - 10,
             x_test=images[:8], y_test=labels[:8])
    np.savez(d / "few_labels.npz", x_train=images[:8], y_train=labels[:7],
             x_test=images[:8], y_test=labels[:8])
    (d / "random.bin").write_bytes(np.random.default_rng(0).bytes(300))
    (d / "empty_dir").mkdir()
    idx30 = d / "idx30"
    idx30.mkdir()
    for split in ("train", "t10k"):
        _write_idx(idx30 / f"{split}-images-idx3-ubyte.gz",
                   np.zeros((4, 30, 30), "uint8"))
        _write_idx(idx30 / f"{split}-labels-idx1-ubyte.gz", np.zeros(4, "uint8"))
    corrupt = d / "corrupt_gz"
    corrupt.mkdir()
    for name in os.listdir(idx30):
        data = gzip.compress(gzip.decompress((idx30 / name).read_bytes()))
        # After the 10-byte header: a deflate block of the reserved type.
        (corrupt / name).write_bytes(data[:10] + b"\xff" * 8 + data[18:])
    (d / "a_file").write_text("a regular file\n")
    return d


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def _tree(directory):
    """Every path under `directory`, relative, with file sizes."""
    found = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, directory)] = (
                os.path.getsize(path) if os.path.isfile(path) else "dir")
    return found


def _bad(args, matches, watch, env=None):
    """Runs `kd ARGS`; checks exit 2, one error line, nothing written to `watch`."""
    before = _tree(watch)
    result = CliRunner().invoke(cli, args, env=env)
    output = result.output
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, output
    # Our own errors are the one line; click's own come after its usage and hint.
    assert lines[-1] == errors[0], output
    assert len(lines) == 1 or (lines[0].startswith("Usage:")
                               and lines[-2].startswith("Try ")), output
    for match in matches:
        assert match in errors[0], errors[0]
    assert _tree(watch) == before, "bad input wrote files"
    return errors[0]


# --- bad input to `kd sample` ---------------------------------------------

SAMPLE_CASES = {
    # name: (model file, extra args, substrings of the error line)
    "steps-above-T-ddim": ("ddpm.keras", ["--sampler", "ddim", "--steps", "1001"],
                           ["1 to 1000"]),
    "steps-negative-ddpm": ("ddpm.keras", ["--sampler", "ddpm", "--steps", "-3"],
                            ["--steps", ">= 1"]),
    "eta-above-one": ("ddpm.keras", ["--eta", "1.5"], ["--eta", "[0, 1]"]),
    "eta-nan": ("ddpm.keras", ["--eta", "nan"], ["--eta", "[0, 1]"]),
    "seed-negative": ("ddpm.keras", ["--seed", "-1"], ["--seed", "0 to 4294967295"]),
    "seed-too-big": ("ddpm.keras", ["--seed", str(2**32)], ["--seed"]),
    "guidance-negative": ("cond.keras", ["--class", "3", "--guidance", "-0.5"],
                          ["--guidance must be >= 0"]),
    "guidance-nan": ("cond.keras", ["--class", "3", "--guidance", "nan"],
                     ["--guidance must be >= 0", "finite"]),
    "guidance-inf": ("cond.keras", ["--guidance", "inf"], ["--guidance", "finite"]),
    "guidance-too-big": ("cond.keras", ["--guidance", "1e9"], ["--guidance", "<= 20"]),
    "class-10": ("cond.keras", ["--class", "10"], ["--class", "0-9"]),
    "guidance-unconditional": ("ddpm.keras", ["--guidance", "2"],
                               ["--guidance", "unconditional"]),
    "empty-model-file": ("empty.keras", [], ["not a .keras model file"]),
    "text-model-file": ("model.txt", [], ["not a .keras model file"]),
    "zip-not-keras": ("zip.keras", [], ["Could not load", "not saved by keras_diffusion"]),
    "model-is-directory": ("folder.keras", [], ["is a directory", ".keras model file"]),
    "vae-as-sampler": ("vae.keras", [], ["holds a VAE", "needs a"]),
}


@pytest.mark.parametrize("case", sorted(SAMPLE_CASES))
def test_bad_sample_input(files, tmp_path, case):
    model, args, matches = SAMPLE_CASES[case]
    _bad(["sample", "--model", str(files / model), "--num", "2", "--steps", "2",
          "--out", str(tmp_path / "x.npz")] + args, matches, tmp_path)


def test_unknown_model_name_lists_shipped_models(tmp_path):
    from keras_diffusion.presets import available_models

    error = _bad(["sample", "--model", "imagen", "--out", str(tmp_path / "x.png")],
                 ["Unknown model 'imagen'", ".keras path"], tmp_path)
    for name in available_models():
        assert name in error


def test_shipped_classifier_is_refused_as_a_sampler(tmp_path):
    from keras_diffusion.presets import available_models

    if "evaluator" not in available_models():
        pytest.skip("the shipped evaluator is not in this install")
    _bad(["sample", "--model", "evaluator", "--out", str(tmp_path / "x.png")],
         ["holds a MNISTClassifier", "needs a"], tmp_path)


@pytest.mark.parametrize("out, matches", [
    ("a_file/x.png", ["is a file, not a directory"]),   # fails even for root
    ("missing/x.png", ["does not exist"]),
])
def test_unwritable_sample_output(files, out, matches):
    _bad(["sample", "--model", str(files / "ddpm.keras"), "--steps", "2",
          "--out", str(files / out)], matches, files)


def test_sample_output_that_is_a_directory_or_too_long(files, tmp_path):
    (tmp_path / "grid.png").mkdir()
    _bad(["sample", "--model", str(files / "ddpm.keras"), "--steps", "2",
          "--out", str(tmp_path / "grid.png")], ["is a directory"], tmp_path)
    _bad(["sample", "--model", str(files / "ddpm.keras"), "--steps", "2",
          "--out", str(tmp_path / ("a" * 300 + ".png"))],
         ["Cannot write", "too long"], tmp_path)


@pytest.mark.skipif(IS_ROOT, reason="root ignores directory permissions")
def test_read_only_output_directory(files, tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        _bad(["sample", "--model", str(files / "ddpm.keras"), "--steps", "2",
              "--out", str(read_only / "x.png")], ["not writable"], tmp_path)
        _bad(["train", "ddpm", "--data", str(files / "small.npz"), "--max-steps",
              "1", "--batch-size", "16", "--out", str(read_only / "run")],
             ["Cannot create output directory"], tmp_path)
    finally:
        read_only.chmod(0o755)


# --- bad input to `kd train` ----------------------------------------------

TRAIN_CASES = {
    # name: (extra args; `{files}` is the inputs folder, substrings of the error)
    "data-empty-dir": (["--data", "{files}/empty_dir"],
                       ["has no train-images-idx3-ubyte", "An MNIST directory holds"]),
    "data-idx-30x30": (["--data", "{files}/idx30"],
                       ["30x30", "multiples of 4", "--image-size", "28 or 32"]),
    "data-npz-30x30": (["--data", "{files}/wrong_shape.npz"], ["multiples of 4"]),
    "data-corrupt-gz": (["--data", "{files}/corrupt_gz"], ["Could not read"]),
    "data-random-bytes": (["--data", "{files}/random.bin"],
                          ["neither a directory nor an .npz", "x_train"]),
    "data-labels-out-of-range": (["--data", "{files}/bad_labels.npz"],
                                 ["whole numbers >= 0", "class indices"]),
    "data-labels-too-few": (["--data", "{files}/few_labels.npz"],
                            ["7 labels", "for 8 images", "one label per image"]),
    "out-under-a-file": (["--out", "{files}/a_file/run"],
                         ["Cannot create output directory", "Not a directory"]),
    "learning-rate-zero": (["--learning-rate", "0"], ["--learning-rate", "positive"]),
    "learning-rate-nan": (["--learning-rate", "nan"], ["--learning-rate", "positive"]),
    "seed-negative": (["--seed", "-3"], ["--seed", "0 to 4294967295"]),
    "batch-larger-than-data": (["--batch-size", "64"], ["larger than the data"]),
    "vae-on-pixel-model": (["--vae", "{files}/vae.keras"], ["--vae applies to latent"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_bad_train_input(files, tmp_path, case):
    args, matches = TRAIN_CASES[case]
    args = [arg.format(files=files) for arg in args]
    defaults = {"--data": str(files / "small.npz"), "--out": str(tmp_path / "run"),
                "--batch-size": "16", "--max-steps": "1"}
    for flag, value in defaults.items():
        if flag not in args:
            args = args + [flag, value]
    _bad(["train", "ddpm"] + args, matches, tmp_path)
    assert not (tmp_path / "run").exists()


def test_wrong_kind_of_vae_for_a_latent_model(files, tmp_path):
    _bad(["train", "ldm", "--vae", str(files / "ddpm.keras"), "--data",
          str(files / "small.npz"), "--batch-size", "16", "--max-steps", "1",
          "--out", str(tmp_path / "run")], ["holds a DDPM", "needs a VAE"], tmp_path)


def test_wrong_kind_of_model_for_evaluate(files, tmp_path, mnist_dir):
    _bad(["evaluate", "--model", str(files / "vae.keras"), "--num", "2",
          "--data", mnist_dir], ["holds a VAE"], tmp_path)


def test_unknown_keras_backend_in_a_fresh_process():
    env = dict(os.environ, KERAS_BACKEND="theano")
    result = subprocess.run(
        [sys.executable, "-m", "keras_diffusion_cli.main", "info"], env=env,
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == ["Error: KERAS_BACKEND='theano' is not supported; use one of "
                     "tensorflow, jax, torch."], result.stderr


# --- NaN losses and weights -----------------------------------------------

# The "ddpm" recipe with a tiny UNet, so that these tests train fast.


@pytest.fixture
def poison(monkeypatch):
    """Makes `kd train ddpm` tiny, and returns `poison(epoch)`, which sets the
    learning rate to NaN from the start of that epoch on.

    The next update then makes every weight NaN, and the loss of the step
    after it is NaN: a deterministic stand-in for a divergent run that works
    compiled under every backend (the learning rate is an optimizer variable,
    which JAX reads back at each epoch's start; a constant one, since a
    learning-rate schedule cannot be overwritten).
    """
    from keras_diffusion.app import recipes
    from keras_diffusion.app import train as training

    monkeypatch.setitem(recipes.RECIPES, "ddpm", dataclasses.replace(
        recipes.RECIPES["ddpm"], network=TINY_UNET,
        learning_rate_decay="constant", warmup_steps=0))
    real_build = training.build_model

    def set_poison(from_epoch):
        class Poison(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if from_epoch is not None and epoch >= from_epoch:
                    self.model.optimizer.learning_rate = float("nan")

        def build(*args, **kwargs):
            model = real_build(*args, **kwargs)
            if keras.backend.backend() == "tensorflow":
                # Tracing the train step costs TF ~20 s of CPU and is not
                # under test here (test_cli and test_resume train compiled).
                model.run_eagerly = True
            fit = model.fit

            def fit_with_poison(*args, callbacks=(), **kwargs):
                return fit(*args, callbacks=list(callbacks) + [Poison()], **kwargs)

            model.fit = fit_with_poison
            return model

        monkeypatch.setattr(training, "build_model", build)

    return set_poison


def _all_finite(weights):
    return all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in weights)


def _check_backup(backup):
    """The backup loads into a fresh recipe model; its weights are finite
    and trained (not the initial ones)."""
    from keras_diffusion.app.recipes import build_model

    [weights] = [name for name in os.listdir(backup)
                 if name.endswith(".weights.h5")]
    fresh = build_model("ddpm", seed=0)
    initial = [np.array(w) for w in fresh.get_weights()]
    fresh.optimizer.build(fresh.trainable_variables)
    fresh.load_weights(str(backup / weights))
    assert _all_finite(fresh.weights)
    assert any(not np.array_equal(a, b)
               for a, b in zip(initial, fresh.get_weights()))


def _epochs_logged(out):
    rows = (out / "log.csv").read_text().splitlines()[1:]
    return [int(row.split(",")[0]) for row in rows]


def test_nan_weights_keep_the_last_good_epoch_and_a_rerun_resumes(
        files, tmp_path, poison):
    from keras_diffusion.app.train import TrainingError
    from keras_diffusion.app.train import train

    out = tmp_path / "run"
    out.mkdir()
    good = b"an earlier good model"
    (out / "ddpm.keras").write_bytes(good)
    # 32 images, 1 step per epoch. Epoch 1's only update makes the weights
    # NaN while its loss (computed before the update) is finite, so
    # TerminateOnNaN sees nothing: the epoch-end weight check must stop
    # training before BackupAndRestore overwrites epoch 0's backup.
    kwargs = dict(data=str(files / "small.npz"), epochs=3, batch_size=32,
                  out_dir=str(out), sample_every=0, verbose=0)
    poison(from_epoch=1)
    with pytest.raises(TrainingError) as caught:
        # overwrite: ddpm.keras is not a finished run to continue.
        train("ddpm", overwrite=True, **kwargs)
    message = str(caught.value)
    backup = out / "backup"
    assert "NaN or Inf weights at the end of epoch 2" in message, message
    assert f"kept in {str(backup)!r}; rerunning resumes" in message, message
    assert "`learning_rate`" in message and "\n" not in message
    assert (out / "ddpm.keras").read_bytes() == good  # not replaced
    assert _epochs_logged(out) == [0]
    _check_backup(backup)

    # A rerun resumes from the backup, with the new learning rate (not the
    # one the backup restores with the optimizer).
    poison(from_epoch=None)
    path = train("ddpm", learning_rate=5e-4, **kwargs)
    assert _epochs_logged(out) == [0, 1, 2]
    assert not backup.exists()
    saved = keras.saving.load_model(path)  # with its optimizer
    assert np.isclose(float(keras.ops.convert_to_numpy(
        saved.optimizer.learning_rate)), 5e-4)
    assert _all_finite(saved.weights)


def test_nan_loss_stops_kd_train_with_exit_1(files, tmp_path, poison):
    # 2 steps per epoch: the first update makes the weights NaN, the second
    # step's loss is NaN and TerminateOnNaN stops training; no epoch had
    # completed, so there is no backup to resume from.
    poison(from_epoch=0)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "ddpm", "--data", str(files / "small.npz"), "--epochs", "2",
        "--batch-size", "16", "--out", str(out)])
    # A training failure (not bad input): exit status 1, one line.
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines()
              if line.startswith("Error: ")]
    assert len(errors) == 1 and "NaN or Inf loss" in errors[0], result.output
    assert "nothing to resume" in errors[0] and "--learning-rate" in errors[0]
    assert "Traceback" not in result.output
    assert not (out / "ddpm.keras").exists()
    assert not (out / "backup").exists()


# --- atomic outputs --------------------------------------------------------


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path, failure):
    from keras_diffusion.utils.io import atomic_path

    target = tmp_path / "model.keras"
    target.write_bytes(b"old and good")
    with pytest.raises(failure):
        with atomic_path(target) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".keras")
            with open(tmp, "wb") as f:
                f.write(b"half a new fi")
            raise failure("crash midway")
    assert target.read_bytes() == b"old and good"
    assert os.listdir(tmp_path) == ["model.keras"]  # no temporary file left


def test_atomic_path_replaces_on_success(tmp_path):
    from keras_diffusion.utils.io import atomic_path

    target = tmp_path / "grid.png"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["grid.png"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_sample_leaves_an_existing_output_untouched(files, tmp_path,
                                                           monkeypatch):
    out = tmp_path / "samples.npz"
    out.write_bytes(b"an earlier good file")
    model = str(files / "ddpm.keras")
    for args in (["--steps", "0"], ["--sampler", "ddpm", "--steps", "1001"],
                 ["--eta", "2"]):
        _bad(["sample", "--model", model, "--out", str(out)] + args, [], tmp_path)
        assert out.read_bytes() == b"an earlier good file"

    # A crash while writing (after sampling) also leaves it, and no temp file.
    def crash(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    result = CliRunner().invoke(cli, ["sample", "--model", model, "--steps", "2",
                                      "--num", "2", "--out", str(out)])
    assert result.exit_code != 0 and isinstance(result.exception, OSError)
    assert out.read_bytes() == b"an earlier good file"
    assert os.listdir(tmp_path) == ["samples.npz"]


def test_sample_npz_with_an_upper_case_suffix(files, tmp_path):
    out = tmp_path / "samples.NPZ"
    result = CliRunner().invoke(cli, ["sample", "--model", str(files / "ddpm.keras"),
                                      "--steps", "2", "--num", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert os.listdir(tmp_path) == ["samples.NPZ"]  # not samples.NPZ.npz
    assert np.load(out)["images"].shape == (2, 28, 28, 1)


# --- reproducibility --------------------------------------------------------


def test_cli_same_seed_same_samples(files, tmp_path):
    runner = CliRunner()

    def sample(seed, name):
        out = tmp_path / name
        result = runner.invoke(cli, [
            "sample", "--model", str(files / "ddpm.keras"), "--sampler", "ddpm",
            "--steps", "3", "--num", "3", "--seed", str(seed), "--out", str(out)])
        assert result.exit_code == 0, result.output
        return np.load(out)["images"]

    a, b, c = sample(3, "a.npz"), sample(3, "b.npz"), sample(4, "c.npz")
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05
