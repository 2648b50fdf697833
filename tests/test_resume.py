"""`kd train` killed with SIGKILL resumes from the last completed epoch."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np

from keras_diffusion.data import load_mnist

EPOCHS = 12


def _epochs_logged(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _train_command(data, out):
    return [sys.executable, "-m", "keras_diffusion_cli.main", "train", "ddpm",
            "--data", str(data), "--epochs", str(EPOCHS), "--batch-size", "16",
            "--out", str(out)]


def test_killed_training_resumes_from_last_epoch(mnist_dir, tmp_path):
    images, labels = load_mnist(mnist_dir, "train")
    data = tmp_path / "small.npz"
    np.savez(data, x_train=images[:32], y_train=labels[:32],
             x_test=images[:32], y_test=labels[:32])
    out = tmp_path / "run"
    log = out / "log.csv"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    process = subprocess.Popen(_train_command(data, out), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while len(_epochs_logged(log)) < 2 and process.poll() is None:
        assert time.time() < deadline, "training made no progress"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = _epochs_logged(log)
    assert 2 <= len(done_before) < EPOCHS, done_before
    assert not (out / "ddpm.keras").exists()
    assert (out / "backup").is_dir()

    rerun = subprocess.run(_train_command(data, out), env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    epochs = _epochs_logged(log)
    resumed = epochs[len(done_before):]
    # Resumed after the last completed epoch, not from scratch.
    assert resumed[0] >= done_before[-1] and resumed[0] > 0, epochs
    assert resumed[-1] == EPOCHS - 1 and len(epochs) < EPOCHS + 2, epochs

    import keras_diffusion

    model = keras_diffusion.load_model(str(out / "ddpm.keras"))
    assert model.generate(2, num_steps=2, progress=False).shape == (2, 28, 28, 1)
