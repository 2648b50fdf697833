"""`FIDCallback`: the FID of a model's samples every N training steps."""

import csv
import math
import os
import time

import keras
import numpy as np

from keras_diffusion.guidance import DEFAULT_GUIDANCE
from keras_diffusion.guidance import check_guidance
from keras_diffusion.guidance import cycled_labels
from keras_diffusion.metrics import as_evaluator
from keras_diffusion.metrics import feature_statistics
from keras_diffusion.metrics import frechet_distance_from_statistics
from keras_diffusion.models import SAMPLING_MODELS
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_file

# The columns of the callback's own CSV, in order.
COLUMNS = ("step", "epoch", "fid", "num_images", "fid_seconds",
           "fid_cpu_seconds", "train_seconds", "train_cpu_seconds")
# The keys it adds to the epoch-end `logs` (so to `CSVLogger` and `History`).
LOG_KEYS = ("fid", "fid_step", "fid_seconds")


class FIDCallback(keras.callbacks.Callback):
    """Samples the model every `every_steps` optimizer steps and logs the FID.

    At every multiple of `every_steps` (counted in optimizer steps, so it
    continues across a resumed run), it draws `num_images` images with
    `model.generate`, scores them with the evaluator (`Evaluator.features`)
    and computes their FID against the reference statistics, which are
    computed once, here. The FID is the one `kd evaluate` reports: with
    the first `num_images` MNIST test images as `reference_images`, the same
    sampler, steps and seed give the same figure (see docs/evaluation.md).

    While the optimizer keeps an EMA of the weights (`use_ema=True`, as the
    recipes train), it scores the EMA weights, which `fit` puts in the model
    at its end: it swaps them in for the evaluation and the training weights
    back after it, so training is unchanged. Under JAX it first syncs the
    training state into the model (`model.jax_state_sync()`).

    Each evaluation is a row of `evaluations` and, with `log_path`, of that
    CSV (rewritten atomically after every row, so a kill loses nothing):

    - `step`: optimizer steps done; `epoch`: Keras' epoch index (0-based,
      as `CSVLogger` writes it);
    - `fid`, `num_images`;
    - `fid_seconds`, `fid_cpu_seconds`: wall-clock and process CPU seconds
      of this evaluation (sampling and scoring);
    - `train_seconds`, `train_cpu_seconds`: wall-clock and process CPU
      seconds of training since `fit` began, the time spent in evaluations
      left out. With `append=True` they continue from the file's last row.

    It also puts `fid`, `fid_step` and `fid_seconds` of the latest evaluation
    into the logs of every epoch's end (NaN before the first), so that a
    `CSVLogger` placed after this callback, and `History`, have those
    columns from the first epoch on. An epoch's `fid` is the latest one
    measured, at step `fid_step`, which may be in an earlier epoch.

    Args:
        reference_images: real images: uint8 in [0, 255] or floats in
            [0, 1], of the evaluator's image shape (`(N, 28, 28)` or
            `(N, 28, 28, 1)` for MNIST's) with N >= 2 (for images in the
            model's [-1, 1], pass `(images + 1) / 2`).
        reference_statistics: instead of `reference_images`, the reference's
            `(mean, covariance)` of evaluator features, as
            `keras_diffusion.metrics.feature_statistics` returns them.
            With neither, the evaluator's saved reference features of the
            first `num_images` test images (`Evaluator.reference`), so no
            data is needed: the figure `kd evaluate --num num_images`
            gives.
        evaluator: an `Evaluator`, an `MNISTClassifier`, or a shipped name,
            `.keras` path or preset directory of one (`as_evaluator`);
            default the shipped MNIST `evaluator`.
        every_steps: int >= 1, optimizer steps between evaluations.
        num_images: int >= 2, images sampled per evaluation.
        sampler: sampler name (`None`: the model's default,
            DPM-Solver++ or Euler).
        num_steps: int, sampling steps (`None`: the sampler's default).
        guidance: float >= 0, the classifier-free guidance weight of a
            class-conditional model, which is sampled with the classes in
            turn (equal counts); `None` means `kd evaluate`'s default
            (`keras_diffusion.guidance.DEFAULT_GUIDANCE`). Only for
            conditional models.
        seed: int, seeds the sampling noise (the same at every evaluation).
        log_path: str or `None`, the CSV to write (say `fid.csv` beside
            `log.csv`).
        append: bool; `True` keeps the rows already in `log_path` (a resumed
            run) and continues their times; `False` starts the file afresh
            at this callback's first `fit`, as `CSVLogger` does.
        ema: bool, score the optimizer's EMA weights when it keeps them
            (`False`: the training weights).
        batch_size: int, images sampled at once.

    Call:
        Pass it to `model.fit(..., callbacks=[...])`, before any `CSVLogger`.
        `evaluations` then holds one dict per evaluation (the CSV's
        columns), `step` the optimizer steps done, and
        `training_seconds()` the training time so far.

    Example:
    >>> from keras_diffusion.data import load_mnist
    >>> test_images, _ = load_mnist("/path/to/mnist", "test")
    >>> fid = FIDCallback(reference_images=test_images[:256], every_steps=500,
    ...                   num_images=256, log_path="run/fid.csv")
    >>> model.fit(dataset, epochs=10, callbacks=[
    ...     fid, keras.callbacks.CSVLogger("run/log.csv")])
    >>> fid.evaluations[-1]["fid"]
    """

    def __init__(self, reference_images=None, reference_statistics=None,
                 evaluator=None, every_steps=500, num_images=256, sampler=None,
                 num_steps=None, guidance=None, seed=0, log_path=None,
                 append=False, ema=True, batch_size=256):
        super().__init__()
        self.every_steps = _positive_int("every_steps", every_steps)
        self.num_images = _positive_int("num_images", num_images)
        if self.num_images < 2:
            raise ValueError(f"`num_images` must be >= 2 (FID fits a "
                             f"covariance). Got {num_images}")
        self.batch_size = _positive_int("batch_size", batch_size)
        if num_steps is not None:
            num_steps = _positive_int("num_steps", num_steps)
        check_guidance(guidance)
        if not 0 <= int(seed) < 2**32:
            raise ValueError(f"`seed` must be in 0 to {2**32 - 1}. Got {seed}")
        self.sampler = sampler
        self.num_steps = num_steps
        self.guidance = None if guidance is None else float(guidance)
        self.seed = int(seed)
        self.ema = bool(ema)
        self.append = bool(append)
        self.log_path = None if log_path is None else check_writable_file(log_path)
        self.evaluator = as_evaluator(evaluator)
        self.reference_statistics = self._reference(reference_images,
                                                    reference_statistics)
        self.evaluations = []
        self._fits = 0
        self._epoch = 0
        self._step = None
        self._next_step = None
        self._start = None
        self._seconds_before = self._cpu_seconds_before = 0.0
        self._eval_seconds = self._eval_cpu_seconds = 0.0

    def _reference(self, images, statistics):
        if images is not None and statistics is not None:
            raise ValueError(
                "Pass at most one of `reference_images` (real images) and "
                "`reference_statistics` (their feature mean and covariance); "
                "got both."
            )
        if images is None and statistics is None:
            if self.evaluator.reference is None:
                raise ValueError(
                    "This evaluator has no saved reference features: pass "
                    "`reference_images` (real test images) or "
                    "`reference_statistics`."
                )
            # The first `num_images` test images, as `kd evaluate` compares.
            return feature_statistics(self.evaluator.reference_features(
                "test", self.num_images))
        if statistics is not None:
            # Validated by the distance itself; checked here so that a bad
            # one fails now, not at the first evaluation.
            frechet_distance_from_statistics(statistics, statistics)
            mean, cov = statistics
            shape = self.evaluator.classifier.image_shape
            dim = self.evaluator.features(np.zeros((1,) + tuple(shape))).shape[1]
            if len(mean) != dim:
                raise ValueError(
                    f"`reference_statistics` are of {len(mean)}-d features; "
                    f"the evaluator's features are {dim}-d."
                )
            return np.asarray(mean, "float64"), np.asarray(cov, "float64")
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images / np.float32(255.0)  # as `Evaluator` scales MNIST
        elif not np.issubdtype(images.dtype, np.floating):
            raise ValueError("`reference_images` must be uint8 in [0, 255] or "
                             f"floats in [0, 1]. Got dtype {images.dtype}")
        elif images.size and float(np.min(images)) < -1e-3:
            raise ValueError(
                "`reference_images` must be in [0, 1] (or uint8); these reach "
                f"{float(np.min(images)):.3g}. For images in the model's "
                "[-1, 1], pass `(images + 1) / 2`."
            )
        if len(images) < 2:
            raise ValueError("`reference_images` needs at least 2 images. "
                             f"Got {len(images)}")
        return feature_statistics(self.evaluator.features(images))

    # ------------------------------------------------------------ training

    def on_train_begin(self, logs=None):
        self._check_model()
        if self._fits == 0:
            self.evaluations = self._read_log() if self.append else []
            self._write_log()  # the header, or the kept rows
        self._fits += 1
        last = self.evaluations[-1] if self.evaluations else {}
        self._seconds_before = float(last.get("train_seconds", 0.0))
        self._cpu_seconds_before = float(last.get("train_cpu_seconds", 0.0))
        self._start = time.perf_counter()
        self._start_cpu = time.process_time()
        self._eval_seconds = self._eval_cpu_seconds = 0.0
        self._step = None  # read from the optimizer at the first batch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._step is None:
            # Here, not in `on_train_begin`: a `BackupAndRestore` after this
            # callback has restored the optimizer by now, and under JAX the
            # model's variables are still current before the first step.
            self._step = int(keras.ops.convert_to_numpy(
                self.model.optimizer.iterations))
            self._next_step = (self._step // self.every_steps + 1) * self.every_steps
        self._batch_begin = batch

    def on_train_batch_end(self, batch, logs=None):
        # One call can cover several steps (`steps_per_execution`).
        self._step += batch - self._batch_begin + 1
        if self._step >= self._next_step:
            self._evaluate()
            self._next_step = (self._step // self.every_steps + 1) * self.every_steps

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        last = self.evaluations[-1] if self.evaluations else {}
        logs["fid"] = float(last.get("fid", math.nan))
        logs["fid_step"] = float(last.get("step", math.nan))
        logs["fid_seconds"] = float(last.get("fid_seconds", math.nan))

    @property
    def step(self):
        """Optimizer steps done, as of the last batch (`None` before one)."""
        return self._step

    def training_seconds(self):
        """`(wall-clock, process CPU)` seconds of training so far, without
        the evaluations (continued from the log's last row with `append`)."""
        if self._start is None:  # before `fit`
            return self._seconds_before, self._cpu_seconds_before
        return (self._seconds_before + time.perf_counter() - self._start
                - self._eval_seconds,
                self._cpu_seconds_before + time.process_time() - self._start_cpu
                - self._eval_cpu_seconds)

    def _evaluate(self):
        """Samples, scores and records one evaluation now; returns its row."""
        self._sync_model()
        start, start_cpu = time.perf_counter(), time.process_time()
        train_seconds, train_cpu_seconds = self.training_seconds()
        with self._scored_weights():
            images = self.model.generate(
                self.num_images, sampler=self.sampler, num_steps=self.num_steps,
                seed=self.seed, batch_size=self.batch_size, progress=False,
                **self._labels())
        fid = frechet_distance_from_statistics(
            feature_statistics(self.evaluator.features(images)),
            self.reference_statistics)
        row = {
            "step": self._step,
            "epoch": self._epoch,
            "fid": fid,
            "num_images": self.num_images,
            "fid_seconds": time.perf_counter() - start,
            "fid_cpu_seconds": time.process_time() - start_cpu,
            "train_seconds": train_seconds,
            "train_cpu_seconds": train_cpu_seconds,
        }
        self.evaluations.append(row)
        self._write_log()
        # Writing the row counts as evaluation time too.
        self._eval_seconds += time.perf_counter() - start
        self._eval_cpu_seconds += time.process_time() - start_cpu
        return row

    # ------------------------------------------------------------- helpers

    def _check_model(self):
        if not isinstance(self.model, SAMPLING_MODELS):
            raise ValueError(
                "FIDCallback samples the model it trains, so it needs a DDPM, "
                "RectifiedFlow or one of their latent versions. Got "
                f"{type(self.model).__name__}."
            )
        if self.guidance is not None and not self.model.conditional:
            raise ValueError("`guidance` needs a class-conditional model; this "
                             "one is unconditional.")
        self.model.make_sampler(self.sampler, self.num_steps)  # fails early

    def _labels(self):
        """The classes in turn, and the guidance, for a conditional model."""
        if not self.model.conditional:
            return {}
        guidance = DEFAULT_GUIDANCE if self.guidance is None else self.guidance
        return {"labels": cycled_labels(self.model.num_classes, self.num_images),
                "guidance": guidance}

    def _sync_model(self):
        """Under JAX, puts the training state into the model's variables and
        waits for the training steps in flight (not timed as evaluation)."""
        if keras.backend.backend() != "jax":
            return
        import jax

        self.model.jax_state_sync()
        jax.block_until_ready([v.value for v in self.model.trainable_variables])

    def _scored_weights(self):
        """A context that puts the optimizer's EMA weights into the model and
        its training weights back afterwards (nothing without an EMA)."""
        optimizer = self.model.optimizer
        averages = getattr(optimizer, "_model_variables_moving_average", None)
        if not (self.ema and getattr(optimizer, "use_ema", False) and averages):
            return _nothing()
        variables = getattr(optimizer, "_trainable_variables",
                            self.model.trainable_variables)
        pairs = [(variable, average) for variable, average
                 in zip(variables, averages) if average is not None]
        return _swapped(pairs)

    def _read_log(self):
        """The rows already in `log_path` (none if it does not exist)."""
        if self.log_path is None or not os.path.isfile(self.log_path):
            return []
        with open(self.log_path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(
                    f"{self.log_path!r} is not an FIDCallback log (its columns "
                    f"are {reader.fieldnames}, not {list(COLUMNS)}); choose "
                    "another `log_path`, or pass `append=False` to replace it."
                )
            return [{key: (int(value) if key in ("step", "epoch", "num_images")
                           else float(value)) for key, value in row.items()}
                    for row in reader]

    def _write_log(self):
        if self.log_path is None:
            return
        with atomic_path(self.log_path) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(self.evaluations)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _swapped:
    """Assigns each `(variable, average)` pair's average to the variable, and
    the variable's own value back on exit."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __enter__(self):
        # Copies: under TensorFlow and PyTorch `assign` writes in place.
        self.saved = [keras.ops.copy(variable.value) for variable, _ in self.pairs]
        for variable, average in self.pairs:
            variable.assign(average)
        return self

    def __exit__(self, *exc):
        for (variable, _), value in zip(self.pairs, self.saved):
            variable.assign(value)
        return False


def _positive_int(name, value):
    try:
        good = not isinstance(value, bool) and int(value) == value >= 1
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ValueError(f"`{name}` must be an int >= 1. Got {value!r}")
    return int(value)
