"""`FIDCallback`: FID every N steps from a plain `model.fit`, and the
Fréchet distance from precomputed statistics that it uses."""

import csv
import math
import time

import keras
import numpy as np
import pytest

from keras_diffusion.callbacks import FIDCallback
from keras_diffusion.callbacks.fid_callback import COLUMNS
from keras_diffusion.data import load_mnist
from keras_diffusion.app.evaluate import evaluate
from keras_diffusion.metrics import Evaluator
from keras_diffusion.metrics import feature_statistics
from keras_diffusion.metrics import frechet_distance
from keras_diffusion.metrics import frechet_distance_from_statistics
from keras_diffusion.models import DDPM
from keras_diffusion.networks import UNet

NUM_IMAGES = 32
SAMPLING = {"num_images": NUM_IMAGES, "sampler": "ddim", "num_steps": 3, "seed": 1}


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator.load()


@pytest.fixture(scope="module")
def reference(mnist_dir):
    """The first test digits, uint8 `(N, 28, 28)`, as `kd evaluate` compares."""
    images, _ = load_mnist(mnist_dir, "test")
    return images[:NUM_IMAGES]


def _model(conditional=False):
    network = UNet(widths=(8,), attention_levels=(), embedding_dim=16,
                   num_heads=1, num_classes=10 if conditional else None,
                   class_cross_attention=False)
    model = DDPM(network, seed=0)
    # A large step and a short EMA, so that EMA and raw weights differ.
    model.compile(optimizer=keras.optimizers.AdamW(
        1e-2, use_ema=True, ema_momentum=0.5))
    return model


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _callback(reference, evaluator, **kwargs):
    return FIDCallback(reference_images=reference, evaluator=evaluator,
                       **SAMPLING, **kwargs)


# ------------------------------------------------------------ statistics


def test_distance_from_statistics_is_the_distance_of_the_features():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (200, 8)) @ rng.normal(0, 1, (8, 8))
    b = rng.normal(0.5, 2, (300, 8))
    assert frechet_distance_from_statistics(
        feature_statistics(a), feature_statistics(b)) == frechet_distance(a, b)


@pytest.mark.parametrize("statistics, match", [
    (np.zeros((3, 3)), "pair"),
    ((np.zeros(3), np.zeros((3, 4))), "covariance"),
    ((np.full(3, np.nan), np.eye(3)), "NaN"),
])
def test_distance_from_statistics_rejects_bad_statistics(statistics, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance_from_statistics(statistics, (np.zeros(3), np.eye(3)))


def test_uint8_and_float_references_agree(reference, evaluator):
    as_uint8 = _callback(reference, evaluator).reference_statistics
    as_float = _callback(reference[..., None] / 255.0,
                         evaluator).reference_statistics
    np.testing.assert_allclose(as_uint8[0], as_float[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(as_uint8[1], as_float[1], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------- model.fit


@pytest.fixture(scope="module")
def trained(mnist_dir, mnist_batch, reference, evaluator, tmp_path_factory):
    """Two identical models trained 3 epochs of 4 steps from a plain
    `model.fit`, one scored on its EMA weights every 6 steps (with a
    `CSVLogger` after it), the other on its raw weights."""
    directory = tmp_path_factory.mktemp("fid_run")
    images = mnist_batch[0][:64]
    ema_model, raw_model = _model(), _model()
    raw_model.set_weights(ema_model.get_weights())
    ema = _callback(reference, evaluator, every_steps=6,
                    log_path=str(directory / "fid.csv"))
    history = ema_model.fit(
        images, batch_size=16, epochs=3, shuffle=False, verbose=0,
        callbacks=[ema, keras.callbacks.CSVLogger(str(directory / "log.csv"))])
    raw = _callback(reference, evaluator, every_steps=6, ema=False)
    raw_model.fit(images, batch_size=16, epochs=3, shuffle=False, verbose=0,
                  callbacks=[raw])
    return {
        "directory": directory, "model": ema_model, "ema": ema, "raw": raw,
        "history": history.history,
        # `fit` leaves the EMA weights in the model: what `kd evaluate` scores.
        "final_fid": evaluate(model=ema_model, data=mnist_dir, **SAMPLING)["fid"],
        "same_weights": all(
            np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in
            zip(ema_model.get_weights(), raw_model.get_weights())),
    }


def test_rows_at_every_n_steps_with_finite_fid(trained):
    rows = _read_csv(trained["directory"] / "fid.csv")
    assert tuple(rows[0]) == COLUMNS
    assert [int(row["step"]) for row in rows] == [6, 12]
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert all(int(row["num_images"]) == NUM_IMAGES for row in rows)
    fids = [float(row["fid"]) for row in rows]
    assert all(math.isfinite(fid) and fid > 0 for fid in fids)
    assert fids == [row["fid"] for row in trained["ema"].evaluations]


def test_rows_log_the_seconds(trained):
    rows = trained["ema"].evaluations
    for row in rows:
        assert row["fid_seconds"] > 0 and row["fid_cpu_seconds"] > 0
    assert 0 < rows[0]["train_seconds"] < rows[1]["train_seconds"]
    assert 0 < rows[0]["train_cpu_seconds"] < rows[1]["train_cpu_seconds"]


def test_epoch_logs_carry_the_latest_fid(trained):
    fids = [row["fid"] for row in trained["ema"].evaluations]
    history = trained["history"]
    # Epoch 0 ends at step 4, before the first evaluation (step 6).
    assert math.isnan(history["fid"][0]) and math.isnan(history["fid_step"][0])
    assert history["fid"][1:] == fids
    assert history["fid_step"][1:] == [6, 12]
    log = _read_csv(trained["directory"] / "log.csv")
    assert [row["fid"] for row in log] == ["nan"] + [str(fid) for fid in fids]
    assert all(row["fid_seconds"] != "nan" for row in log[1:])


def test_scores_the_ema_weights_and_leaves_training_unchanged(trained):
    # The last evaluation (step 12, the end of training) scored the EMA
    # weights that `fit` then put into the model; the raw run, trained
    # identically (the swap and its undoing changed nothing), scored others.
    assert trained["same_weights"]
    ema_fid = trained["ema"].evaluations[-1]["fid"]
    assert ema_fid == pytest.approx(trained["final_fid"], rel=1e-5)
    assert trained["raw"].evaluations[-1]["fid"] != pytest.approx(ema_fid, rel=1e-3)


def test_a_resumed_run_appends_and_continues_the_times(trained, mnist_batch,
                                                       reference, evaluator):
    path = str(trained["directory"] / "fid.csv")
    before = trained["ema"].evaluations

    class SlowEvaluator(Evaluator):
        def features(self, images01):
            time.sleep(1.0)
            return super().features(images01)

    slow = SlowEvaluator(evaluator.classifier)
    resumed = _callback(reference, slow, every_steps=3, log_path=path,
                        append=True)
    start = time.perf_counter()
    trained["model"].fit(mnist_batch[0][:64], batch_size=16, epochs=2,
                         shuffle=False, verbose=0, callbacks=[resumed])
    wall = time.perf_counter() - start
    rows = _read_csv(path)
    assert [int(row["step"]) for row in rows] == [6, 12, 15, 18]
    assert [float(row["fid"]) for row in rows[:2]] == [r["fid"] for r in before]
    seconds = [float(row["train_seconds"]) for row in rows]
    assert seconds == sorted(seconds) and seconds[2] > seconds[1]
    # Evaluation time is not training time: had the first evaluation's
    # second of sleep been counted, this would exceed the wall-clock time.
    new = resumed.evaluations[2:]
    assert new[0]["fid_seconds"] >= 1.0
    assert (new[1]["train_seconds"] - seconds[1] + new[0]["fid_seconds"]
            + new[1]["fid_seconds"]) <= wall


def test_append_false_starts_the_log_afresh(trained, reference, evaluator,
                                            tmp_path):
    path = tmp_path / "fid.csv"
    path.write_text(",".join(COLUMNS) + "\n6,1,50.0,32,1.0,1.0,10.0,10.0\n")
    callback = _callback(reference, evaluator, log_path=str(path))
    callback.set_model(trained["model"])
    callback.on_train_begin()
    assert _read_csv(path) == [] and callback.evaluations == []
    assert path.read_text().strip() == ",".join(COLUMNS)


def test_conditional_model_samples_balanced_classes(mnist_batch, reference,
                                                    evaluator, monkeypatch):
    images, labels = mnist_batch
    model = _model(conditional=True)
    seen = []
    generate = model.generate

    def recording_generate(*args, **kwargs):
        seen.append(kwargs)
        return generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", recording_generate)
    callback = _callback(reference, evaluator, every_steps=2, guidance=2.0)
    model.fit(images[:64], labels[:64], batch_size=16, epochs=1, shuffle=False,
              verbose=0, callbacks=[callback])
    assert [row["step"] for row in callback.evaluations] == [2, 4]
    assert all(math.isfinite(row["fid"]) for row in callback.evaluations)
    assert len(seen) == 2 and seen[0]["guidance"] == 2.0
    counts = np.bincount(seen[0]["labels"], minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == NUM_IMAGES


# -------------------------------------------------------------- arguments


@pytest.mark.parametrize("kwargs, match", [
    ({"every_steps": 0}, "every_steps"),
    ({"num_images": 1}, "num_images"),
    ({"guidance": -1.0}, "guidance"),
    ({"reference_statistics": (np.zeros(3), np.eye(3))}, "at most one"),
    ({"reference_images": np.zeros((4, 28, 28, 1), "float32") - 1}, r"\[-1, 1\]"),
    ({"reference_images": None,
      "reference_statistics": (np.zeros(3), np.eye(3))}, "128-d"),
    ({"evaluator": 3}, "evaluator"),
])
def test_rejects_bad_arguments(kwargs, match, reference, evaluator):
    arguments = {"reference_images": reference, "evaluator": evaluator,
                 "every_steps": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        FIDCallback(**arguments)


def test_without_a_reference_it_uses_the_evaluators_saved_one(reference, evaluator):
    saved = FIDCallback(evaluator=evaluator, **SAMPLING)
    given = _callback(reference, evaluator)
    for mine, theirs in zip(saved.reference_statistics, given.reference_statistics):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="no saved reference"):
        FIDCallback(evaluator=Evaluator(evaluator.classifier), **SAMPLING)


def test_rejects_guidance_for_an_unconditional_model(reference, evaluator):
    callback = _callback(reference, evaluator, guidance=2.0)
    callback.set_model(_model())
    with pytest.raises(ValueError, match="class-conditional"):
        callback.on_train_begin()


def test_rejects_a_model_it_cannot_sample(reference, evaluator):
    callback = _callback(reference, evaluator)
    callback.set_model(keras.Sequential([keras.layers.Dense(1)]))
    with pytest.raises(ValueError, match="DDPM"):
        callback.on_train_begin()


def test_kd_train_eval_every_logs_fid(mnist_dir, tmp_path, quick_train):
    """`train(eval_every=N)` (`kd train --eval-every N`): FID rows every N
    steps in OUT/fid.csv, the latest in log.csv; a continued run appends."""
    out = tmp_path / "run"
    quick_train(mnist_dir, out, max_steps=4, eval_every=2, eval_images=8)
    with open(out / "fid.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == [2, 4]
    assert all(np.isfinite(float(row["fid"])) and float(row["fid_seconds"]) > 0
               for row in rows)
    with open(out / "log.csv") as f:
        [logged] = list(csv.DictReader(f))
    assert float(logged["fid"]) == float(rows[-1]["fid"])

    quick_train(mnist_dir, out, max_steps=6, eval_every=2, eval_images=8)
    with open(out / "fid.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == [2, 4, 6]


def _cpu_devices():
    from keras_diffusion.utils import jax_cpu

    return min(jax_cpu.usable_cores(), jax_cpu.MAX_DEVICES)


@pytest.mark.skipif(keras.backend.backend() != "jax" or _cpu_devices() < 2,
                    reason="JAX trains data-parallel over several CPU cores")
def test_kd_train_eval_every_data_parallel_over_cpu_devices(mnist_dir, tmp_path):
    """A fresh `kd` under JAX splits the CPU into devices and trains
    data-parallel; the evaluator behind --eval-every must still predict
    (loaded inside the distribution, its variables were a mix of one-device
    and replicated ones, which JAX refused)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    batch_size = 4 * _cpu_devices()  # splits evenly among the devices
    result = subprocess.run(
        [sys.executable, "-m", "keras_diffusion_cli.main", "train", "ddpm",
         "--data", mnist_dir, "--max-steps", "1", "--batch-size", str(batch_size),
         "--eval-every", "1", "--eval-images", "8", "--out", str(out)],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Training data-parallel on" in result.stdout, result.stdout[-2000:]
    with open(out / "fid.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["step"] for row in rows] == ["1"]
    assert np.isfinite(float(rows[0]["fid"]))
