"""`kd train` resumes at any step, finishes once, and trains alone in --out."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from keras_diffusion_cli.main import cli

MAX_STEPS = 60


def _train_command(data, out, *extra):
    return [sys.executable, "-m", "keras_diffusion_cli.main", "train", "ddpm",
            "--data", str(data), "--max-steps", str(MAX_STEPS), "--batch-size",
            "16", "--out", str(out), *extra]


def _backed_up_step(out):
    try:
        with open(out / "backup" / "training_metadata.json") as f:
            return json.load(f)["step"]
    except (OSError, ValueError, KeyError):
        return 0


def _steps_of(path):
    import keras_diffusion  # noqa: F401 (registers the classes)

    model = keras.saving.load_model(str(path))
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def test_killed_training_resumes_from_its_last_step(mnist_dir, tmp_path):
    """SIGKILL in the middle of the only epoch (60 of 625 steps of 16 of
    10,000 digits); the rerun resumes from the last backup and ends at 60."""
    out = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(_train_command(mnist_dir, out), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while _backed_up_step(out) < 20 and process.poll() is None:
        assert time.time() < deadline, "training made no progress"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _backed_up_step(out)
    assert 20 <= killed_at < MAX_STEPS, killed_at
    assert not (out / "ddpm.keras").exists()

    rerun = subprocess.run(_train_command(mnist_dir, out), env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = [line for line in rerun.stdout.splitlines()
               if line.startswith("Resuming from step")]
    assert resumed, rerun.stdout[-2000:]
    assert int(resumed[0].split()[3]) >= killed_at, resumed
    assert _steps_of(out / "ddpm.keras") == MAX_STEPS
    assert not (out / "backup").exists()
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 2, rows


def test_rerun_of_finished_run_is_complete_continues_or_starts_over(
        mnist_dir, tmp_path, quick_train, capsys):
    out = tmp_path / "run"
    batches = []  # `train` runs the callbacks it is given

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    path = quick_train(mnist_dir, out, max_steps=3, callbacks=[Count()])
    assert "Saved" in capsys.readouterr().out
    assert len(batches) == 3
    saved = open(path, "rb").read()
    # The preset beside the model (to share) holds the same weights.
    import keras_diffusion

    preset = keras_diffusion.load_model(str(out / "preset"))
    for a, b in zip(preset.get_weights(), keras.saving.load_model(path).get_weights()):
        np.testing.assert_array_equal(a, b)

    # The same run again: complete, the model untouched.
    assert quick_train(mnist_dir, out, max_steps=3) == path
    printed = capsys.readouterr().out
    assert "is complete: trained for 3 steps" in printed and "Saved" not in printed
    assert open(path, "rb").read() == saved

    # More steps: the finished model trains on from step 3 to 5.
    quick_train(mnist_dir, out, max_steps=5)
    assert "Continuing" in capsys.readouterr().out
    assert _steps_of(path) == 5
    assert len((out / "log.csv").read_text().splitlines()) == 3  # header + 2

    # --overwrite: a new run from step 0, a new log.
    quick_train(mnist_dir, out, max_steps=2, overwrite=True)
    assert _steps_of(path) == 2
    assert len((out / "log.csv").read_text().splitlines()) == 2


def test_kd_train_into_a_folder_in_use_exits_2(mnist_dir, tmp_path):
    from keras_diffusion.utils.lock import lock_directory

    out = tmp_path / "run"
    out.mkdir()
    with lock_directory(str(out)):
        result = CliRunner().invoke(cli, [
            "train", "ddpm", "--data", mnist_dir, "--max-steps", "1",
            "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines()
              if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert str(out) in errors[0] and f"process {os.getpid()}" in errors[0]
    assert "--out" in errors[0], errors[0]
    assert os.listdir(out) == []  # the lock file went with the lock


def test_lock_is_released_when_its_holder_dies(tmp_path):
    """A SIGKILLed holder leaves no lock behind: the next trainer gets it."""
    from keras_diffusion.utils.lock import lock_directory

    holder = subprocess.Popen([
        sys.executable, "-c",
        "import sys, time; from keras_diffusion.utils.lock import lock_directory\n"
        "with lock_directory(sys.argv[1]):\n"
        "    print('locked', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(ValueError, match=f"process {holder.pid} is training"):
        with lock_directory(str(tmp_path)):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with lock_directory(str(tmp_path)):
        pass


def test_killed_reflow_pair_drawing_resumes_from_its_chunks(tmp_path):
    """`kd train reflow` killed while drawing pairs reuses the finished chunks."""
    from keras_diffusion import RectifiedFlow
    from keras_diffusion import UNet
    from keras_diffusion.app import reflow_pairs as reflow

    flow_path = str(tmp_path / "flow1.keras")
    RectifiedFlow(UNet((28, 28, 1), widths=(8,), attention_levels=(),
                       embedding_dim=16, num_heads=1), seed=0).save(flow_path)
    out = tmp_path / "reflow"
    partial = out / "pairs.npz.partial"
    command = [sys.executable, "-m", "keras_diffusion_cli.main", "train", "reflow",
               "--from", flow_path, "--pairs", "1024", "--pair-steps", "10",
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
