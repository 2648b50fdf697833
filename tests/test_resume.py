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


def test_killed_reflow_pair_drawing_resumes_from_its_chunks(tmp_path):
    """`kd train reflow` killed while drawing pairs reuses the finished chunks."""
    from keras_diffusion import RectifiedFlow
    from keras_diffusion import UNet
    from keras_diffusion import reflow

    flow_path = str(tmp_path / "flow1.keras")
    RectifiedFlow(UNet((28, 28, 1), widths=(8,), attention_levels=(),
                       embedding_dim=16, num_heads=1), seed=0).save(flow_path)
    out = tmp_path / "reflow"
    partial = out / "pairs.npz.partial"
    command = [sys.executable, "-m", "keras_diffusion_cli.main", "train", "reflow",
               "--from", flow_path, "--pairs", "1024", "--pair-steps", "20",
               "--max-steps", "1", "--batch-size", "16", "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    first_chunk = partial / "chunk_00000.npz"
    deadline = time.time() + 300
    while not first_chunk.exists() and process.poll() is None:
        assert time.time() < deadline, "pair drawing made no progress"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_chunk.exists(), process.stderr.read()[-2000:]
    assert not (out / "pairs.npz").exists()  # no final file from a killed run

    # Mark the finished chunk so that the rerun shows it reused it.
    chunk = reflow.load_pairs(first_chunk)
    marked = chunk["images"] + 1.0
    np.savez(first_chunk, noise=chunk["noise"], images=marked)

    rerun = subprocess.run(command, env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    pairs = reflow.load_pairs(out / "pairs.npz")
    assert pairs["noise"].shape == (1024, 28, 28, 1)
    np.testing.assert_array_equal(pairs["images"][: len(marked)], marked)
    assert not partial.exists() and (out / "reflow.keras").is_file()
