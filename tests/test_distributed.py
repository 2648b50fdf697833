"""Data-parallel training (`--distribute`) on two virtual CPU devices.

JAX gets two devices from `XLA_FLAGS=--xla_force_host_platform_device_count=2`
and TensorFlow two logical CPU devices from
`tf.config.set_logical_device_configuration`; both must be set before the
backend starts, so each check runs in a subprocess. The suite runs once per
backend, and each subprocess runs only in the matching run (the others skip),
so the suite pays for each at most once. PyTorch has no `keras.distribution`
implementation: its tests check the refusal.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from keras_diffusion.app.distribution import Replicas
from keras_diffusion.app.distribution import data_parallel
from keras_diffusion.app.train import _check_batch_split

BACKEND = keras.backend.backend()

# Trains a tiny class-conditional DDPM for 3 steps on one device and on two,
# on the same global batches with the same seed, then `training.train` with
# `distribute=True`; prints a JSON summary on its last line.
SCRIPT = r"""
import contextlib, json, os, sys
backend, work = sys.argv[1], sys.argv[2]
if backend == "tensorflow":
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from keras_diffusion import DDPM, NoisyClassifier, TimeConditionedClassifier
from keras_diffusion import UNet
from keras_diffusion.app import recipes
from keras_diffusion.app import train as training
from keras_diffusion.app.distribution import data_parallel
from keras_diffusion.utils.replicas import draw_for_global_batch

DEVICES = ["cpu:0", "cpu:1"]
rng = np.random.default_rng(0)
images = rng.uniform(-1, 1, (12, 8, 8, 1)).astype("float32")
labels = rng.integers(0, 10, 12)
out = {"devices": keras.distribution.list_devices()}


class BatchLosses(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def fit(distributed):
    keras.utils.set_random_seed(0)
    scope = data_parallel(DEVICES) if distributed else contextlib.nullcontext()
    with scope as replicas:
        model = DDPM(UNet(image_shape=(8, 8, 1), widths=(8,),
                          attention_levels=(), embedding_dim=16, num_heads=1,
                          num_classes=10, class_cross_attention=False),
                     seed=1, cond_drop_prob=0.5)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        losses = BatchLosses()
        model.fit(images, labels, batch_size=4, epochs=1, shuffle=False,
                  verbose=0, callbacks=[losses])
    weights = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return model, losses.losses, weights, replicas


_, single_losses, single_weights, _ = fit(False)
model, losses, weights, replicas = fit(True)


def fit_classifier(distributed):  # the noisy-image classifier, as `fit`
    keras.utils.set_random_seed(0)
    scope = data_parallel(DEVICES) if distributed else contextlib.nullcontext()
    with scope:
        classifier = NoisyClassifier(TimeConditionedClassifier(
            image_shape=(8, 8, 1), widths=(8,), embedding_dim=16,
            num_classes=10), seed=1)
        classifier.compile(optimizer=keras.optimizers.SGD(0.1))
        batch_losses = BatchLosses()
        classifier.fit(images, labels, batch_size=4, epochs=1, shuffle=False,
                       verbose=0, callbacks=[batch_losses])
    return batch_losses.losses


out["classifier_single_losses"] = fit_classifier(False)
out["classifier_losses"] = fit_classifier(True)
out["num_replicas"] = replicas.num_replicas
out["single_losses"], out["losses"] = single_losses, losses
out["max_weight_diff"] = max(float(np.abs(a - b).max())
                             for a, b in zip(single_weights, weights))

# Every variable (weights, optimizer state, seed state) is replicated.
copies = []
for variable in model.variables + model.optimizer.variables:
    if backend == "jax":
        value = variable.value
        shards = [np.asarray(s.data) for s in value.addressable_shards]
        copies.append(dict(replicated=bool(value.sharding.is_fully_replicated),
                           num=len(shards), equal=all(
                               np.array_equal(shards[0], s) for s in shards)))
    else:
        parts = [np.asarray(p) for p in variable.value.values]
        copies.append(dict(replicated=len({p.device for p in
                                           variable.value.values}) == 2,
                           num=len(parts), equal=all(
                               np.array_equal(parts[0], p) for p in parts)))
out["copies"] = copies

if backend == "tensorflow":
    # Per-replica draws: a plain draw from the mirrored SeedGenerator, and
    # the models' draw for the global batch.
    with data_parallel(DEVICES):
        strategy = tf.distribute.get_strategy()
        generator = keras.random.SeedGenerator(5)

    @tf.function
    def draws():
        def per_replica():
            plain = keras.random.normal((3, 2), seed=generator)
            ours = draw_for_global_batch(keras.random.normal, (3, 2),
                                         seed=generator)
            return plain, ours
        return strategy.run(per_replica)

    plain, ours = draws()
    plain = [np.asarray(v) for v in strategy.experimental_local_results(plain)]
    ours = [np.asarray(v) for v in strategy.experimental_local_results(ours)]
    # One device, from the same seed state: the global batch's draw.
    generator_one = keras.random.SeedGenerator(5)
    keras.random.normal((3, 2), seed=generator_one)  # advance like `plain`
    reference = np.asarray(keras.random.normal((6, 2), seed=generator_one))
    out["plain_draws_equal"] = bool(np.array_equal(plain[0], plain[1]))
else:
    # The train step is traced once over the global batch, laid out over
    # the devices as Keras lays out a batch: each device holds its rows.
    import jax
    with data_parallel(DEVICES):
        rows = keras.distribution.distribution().get_data_layout((6, 2))
        values = jax.jit(lambda: keras.random.normal((6, 2), seed=5),
                         out_shardings=rows.backend_layout)()
    ours = [np.asarray(shard.data) for shard in values.addressable_shards]
    reference = np.asarray(keras.random.normal((6, 2), seed=5))
out["our_draws_equal"] = bool(np.array_equal(ours[0], ours[1]))
out["our_draws_match_one_device"] = bool(
    len(ours) == 2 and np.allclose(np.concatenate(ours), reference))

# The library path: `training.train(..., distribute=True)`.
recipes.RECIPES["tiny"] = recipes.DiffusionRecipe(
    name="tiny", description="a tiny DDPM", learning_rate=1e-3,
    ema_momentum=0.9, batch_size=4, max_steps=2,
    network={"image_shape": (28, 28, 1), "widths": (8,),
             "attention_levels": (), "embedding_dim": 16, "num_heads": 1},
)
data = os.path.join(work, "mnist.npz")
digits = rng.integers(0, 256, (16, 28, 28)).astype("uint8")
np.savez(data, x_train=digits, y_train=np.arange(16) % 10, x_test=digits,
         y_test=np.arange(16) % 10)
run = os.path.join(work, "run")
try:
    training.train("tiny", data=data, batch_size=5, out_dir=run, verbose=0,
                   distribute=True)
except ValueError as error:
    out["odd_batch_error"] = str(error)
path = training.train("tiny", data=data, out_dir=run, verbose=0,
                      sample_every=1, distribute=True)
out["files"] = sorted(os.listdir(run))
out["samples"] = sorted(os.listdir(os.path.join(run, "samples")))
import keras_diffusion
out["loaded"] = type(keras_diffusion.load_model(path)).__name__

if backend == "jax":
    # `distribute=None` (the default): data-parallel over several JAX CPU
    # devices by itself, when the batch splits among them.
    import io
    from keras_diffusion.utils.jax_cpu import cpu_devices_for
    out["auto_devices"] = [cpu_devices_for(4), cpu_devices_for(5)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        path = training.train("tiny", data=data, verbose=1, sample_every=0,
                              out_dir=os.path.join(work, "auto"))
    out["auto_printed"] = printed.getvalue()
    out["auto_loaded"] = type(keras_diffusion.load_model(path)).__name__

    # Compiled sampling splits a batch among the CPU devices when it can.
    from keras_diffusion.utils.compile import compile_function
    scale = keras.Variable(np.float32(2.0))
    affine = compile_function(lambda x, t: x * scale + t, [scale])
    results = [affine(np.ones((n, 3), "float32"), np.float32(1)) for n in (4, 5)]
    out["sampling_devices"] = [len(r.sharding.device_set) for r in results]
    out["sampling_values_ok"] = all(np.allclose(np.asarray(r), 3) for r in results)
    compiled, eager = (model.generate(4, sampler="ddim", num_steps=3, labels=3,
                                      progress=False, compile=c)
                       for c in (True, False))
    out["sharded_sampling_max_diff"] = float(np.abs(compiled - eager).max())
print(json.dumps(out))
"""


def _run_script(backend, tmp_path):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if backend == "jax":
        env["XLA_FLAGS"] = " ".join(
            [env.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=2"]
        ).strip()
    result = subprocess.run([sys.executable, "-c", SCRIPT, backend, str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    """The script's summary under this run's backend (JAX or TensorFlow)."""
    if BACKEND not in ("jax", "tensorflow"):
        pytest.skip(f"data-parallel training runs under jax and tensorflow, "
                    f"not {BACKEND} (see test_torch_is_refused)")
    return _run_script(BACKEND, tmp_path_factory.mktemp("distributed"))


def test_two_replicas_on_two_devices(two_devices):
    assert two_devices["devices"] == ["cpu:0", "cpu:1"]
    assert two_devices["num_replicas"] == 2


def test_variables_are_replicated(two_devices):
    copies = two_devices["copies"]
    assert copies, "no variables"
    for copy in copies:
        assert copy == {"replicated": True, "num": 2, "equal": True}


def test_loss_matches_one_device_on_the_same_global_batch(two_devices):
    # The same global batches and seed: the noise, timesteps and dropped
    # labels are drawn for the global batch, so each replica gets its own
    # rows and the mean over both is one device's loss. Were the noise
    # shared, the loss would differ by far more than rounding.
    single, losses = two_devices["single_losses"], two_devices["losses"]
    assert len(losses) == len(single) == 3
    np.testing.assert_allclose(losses, single, rtol=1e-4)
    assert two_devices["max_weight_diff"] < 1e-4


def test_noisy_classifier_loss_matches_one_device(two_devices):
    # Its timesteps and noise are drawn for the global batch, and its loss
    # is scaled for the replicas, as DDPM's: under MirroredStrategy a plain
    # draw would give both replicas the same noise.
    single = two_devices["classifier_single_losses"]
    losses = two_devices["classifier_losses"]
    assert len(losses) == len(single) == 3
    np.testing.assert_allclose(losses, single, rtol=1e-4, atol=1e-5)


def test_replicas_draw_different_noise(two_devices):
    # Each replica's rows of the global batch's noise: different on the two
    # devices, and together one device's draw from the same seed.
    assert not two_devices["our_draws_equal"]
    assert two_devices["our_draws_match_one_device"]
    if BACKEND == "tensorflow":
        # Why the models draw through `draw_for_global_batch`: a plain
        # draw from the model's SeedGenerator (a mirrored variable) is the
        # same on every replica.
        assert two_devices["plain_draws_equal"]


def test_train_distribute_writes_once(two_devices):
    assert "global batch" in two_devices["odd_batch_error"]
    assert "multiple of 2" in two_devices["odd_batch_error"]
    # One model file, one log, one grid per epoch; no backup left behind.
    assert two_devices["files"] == ["log.csv", "preset", "samples", "tiny.keras"]
    assert two_devices["samples"] == ["epoch_001.png"]
    assert two_devices["loaded"] == "DDPM"


def test_jax_cpu_devices_are_used_by_default(two_devices):
    if BACKEND != "jax":
        pytest.skip("the automatic CPU split is JAX's")
    assert two_devices["auto_devices"] == [["cpu:0", "cpu:1"], None]
    assert "data-parallel on 2 JAX CPU devices" in two_devices["auto_printed"]
    assert two_devices["auto_loaded"] == "DDPM"


def test_jax_sampling_splits_the_batch_among_cpu_devices(two_devices):
    if BACKEND != "jax":
        pytest.skip("the split of compiled sampling is JAX's")
    # 4 rows split over both devices; 5 do not split and stay on one.
    assert two_devices["sampling_devices"] == [2, 1]
    assert two_devices["sampling_values_ok"]
    # The split compiled step gives eager stepping's samples.
    assert two_devices["sharded_sampling_max_diff"] < 1e-4


def test_batch_must_split_among_replicas():
    _check_batch_split(128, Replicas(8, 1, 0))
    _check_batch_split(5, None)
    with pytest.raises(ValueError, match="multiple of 8, such as 96 or 104"):
        _check_batch_split(100, Replicas(8, 1, 0))


def test_bad_devices_are_refused():
    with pytest.raises(ValueError, match="non-empty list"):
        with data_parallel("gpu:0"):
            pass


@pytest.mark.skipif(BACKEND != "torch", reason="the torch refusal")
def test_torch_is_refused():
    with pytest.raises(ValueError, match="no PyTorch implementation.*jax"):
        with data_parallel():
            pass


@pytest.mark.skipif(BACKEND != "torch", reason="the torch refusal")
def test_cli_distribute_under_torch_exits_2(tmp_path):
    from keras_diffusion_cli.main import cli

    result = CliRunner().invoke(cli, ["train", "ddpm", "--distribute",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "not supported under KERAS_BACKEND=torch" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_cli_distribute_refused_for_reflow_and_evaluator():
    from keras_diffusion_cli.main import cli

    for kind in ("reflow --from rf-pixel", "evaluator"):
        result = CliRunner().invoke(cli, ["train", *kind.split(), "--distribute"])
        assert result.exit_code == 2, result.output
        assert "--distribute does not apply" in result.output
