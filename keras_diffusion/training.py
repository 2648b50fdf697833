"""`train()`: the library function behind `kd train KIND`."""

import contextlib
import math
import os
import shutil

import keras
import numpy as np

from keras_diffusion.data import load_mnist
from keras_diffusion.data import make_dataset
from keras_diffusion.data import to_model_range
from keras_diffusion.distribution import cpu_data_parallel
from keras_diffusion.distribution import data_parallel
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.models import VAE
from keras_diffusion.pretrained import load_model
from keras_diffusion.recipes import build_model
from keras_diffusion.recipes import get_recipe
from keras_diffusion.recipes import is_conditional
from keras_diffusion.recipes import make_optimizer
from keras_diffusion.recipes import needs_vae
from keras_diffusion.reflow import copy_flow
from keras_diffusion.reflow import generate_pairs
from keras_diffusion.reflow import load_pairs
from keras_diffusion.utils.checks import check_int
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_dir
from keras_diffusion.viz import save_image_grid


class TrainingError(RuntimeError):
    """Training stopped early; the message says why and what was kept."""


def train(kind, data=None, epochs=None, max_steps=None, batch_size=None,
          out_dir=None, seed=0, learning_rate=None, sample_every=1, verbose=1,
          vae=None, distribute=None):
    """Trains the default model of `kind` on MNIST and saves it.

    Writes to `out_dir` (default `runs/<kind>/`): `<kind>.keras` (the final
    model, EMA weights, with its optimizer so training can continue),
    `log.csv` (loss per epoch), `samples/epoch_NNN.png` (a sample grid, or for
    a VAE originals over reconstructions, at the end of every
    `sample_every` epochs) and, while training, `backup/`. A rerun of the
    same call after a crash resumes from the last completed epoch
    (`keras.callbacks.BackupAndRestore`). Latent kinds without `vae` first
    train one into `out_dir/vae/` (reused on a rerun).

    Args:
        kind: str, a recipe name (see `keras_diffusion.recipes.RECIPES`).
        data: `None` (tensorflow-datasets) or a path to an MNIST IDX
            directory or `.npz`.
        epochs: int, passes over the data.
        max_steps: int, stop after this many optimizer steps in total. With
            neither `epochs` nor `max_steps`, the recipe's `max_steps`.
        batch_size: int; default from the recipe.
        out_dir: str, output directory.
        seed: int, seeds model initialization, noise and shuffling.
        learning_rate: float; default from the recipe.
        sample_every: int, epochs between sample grids (0: none).
        verbose: Keras verbosity (1: progress bar).
        vae: for latent kinds, a shipped name or `.keras` path of a trained
            VAE; `None` trains one first.
        distribute: bool, train data-parallel on every device (and, under
            JAX with the `KERAS_DISTRIBUTION_*` variables set, every host)
            with `keras_diffusion.distribution.data_parallel`; `batch_size`
            is then the global batch, split evenly among the devices. Only
            process 0 writes files. See docs/distributed.md. `None` (the
            default): data-parallel only over the CPU devices that
            `keras_diffusion.utils.jax_cpu.split_cpu_into_devices` gives
            JAX (`kd` does this), when the batch splits evenly among them;
            otherwise one device. `False`: always one device.

    Returns:
        The path of the saved `.keras` model.
    """
    if distribute:
        context = data_parallel()
    elif distribute is None:
        context = cpu_data_parallel(batch_size or get_recipe(kind).get("batch_size"))
    else:
        context = contextlib.nullcontext()
    with context as replicas:
        if replicas is not None and not distribute and verbose:
            print(f"Training data-parallel on {replicas.num_replicas} JAX CPU "
                  "devices, one per core (see keras_diffusion/utils/jax_cpu.py).")
        return _train(kind, data, epochs, max_steps, batch_size, out_dir, seed,
                      learning_rate, sample_every, verbose, vae, replicas)


def _train(kind, data, epochs, max_steps, batch_size, out_dir, seed,
           learning_rate, sample_every, verbose, vae, replicas):
    """`train`, inside the distribution (`replicas`) if there is one."""
    recipe = get_recipe(kind)
    if recipe["model"] == "reflow":
        raise ValueError("Reflow starts from a trained flow: use "
                         "`train_reflow(flow)` (`kd train reflow --from FLOW1`).")
    requested = {"epochs": epochs, "max_steps": max_steps, "batch_size": batch_size}
    max_steps, batch_size = _check_settings(recipe, epochs, max_steps, batch_size,
                                            learning_rate, seed)
    _check_batch_split(batch_size, replicas)
    if vae is not None and not needs_vae(kind):
        raise ValueError(f"--vae applies to latent models, not to {kind!r}.")
    # Every check on the input comes before the output directory is made.
    if vae is not None and not isinstance(vae, VAE):
        vae = load_model(vae, expected_type=VAE)
    images, labels = load_mnist(data, "train")
    epochs, steps_per_epoch = _epoch_plan(len(images), batch_size, epochs, max_steps)
    out_dir = check_writable_dir(out_dir or os.path.join("runs", kind))
    images = to_model_range(images)

    vae_model, latent_scale = None, 1.0
    if needs_vae(kind):
        vae_model = _get_vae(vae, out_dir, data=data, seed=seed, verbose=verbose,
                             distribute=replicas is not None, **requested)
        latent_scale = LatentDiffusion.compute_latent_scale(vae_model, images)
    keras.utils.set_random_seed(seed)
    model = build_model(kind, seed=seed, learning_rate=learning_rate,
                        vae=vae_model, latent_scale=latent_scale)
    conditional = is_conditional(kind)
    if recipe["model"] == "classifier":
        sample_every = 0  # a classifier (`NoisyClassifier`) draws no samples
    dataset = make_dataset(images, labels if conditional else None,
                           batch_size=batch_size, seed=seed)
    return _fit_and_save(model, dataset, out_dir, kind, epochs, steps_per_epoch,
                         max_steps, learning_rate=learning_rate,
                         sample_every=sample_every, seed=seed, verbose=verbose,
                         images=images, replicas=replicas)


def train_reflow(flow, num_pairs=None, epochs=None, max_steps=None,
                 batch_size=None, out_dir=None, seed=0, learning_rate=None,
                 sample_every=1, verbose=1, pair_steps=None):
    """Reflow: trains Flow-2 on (noise, image) pairs drawn from Flow-1.

    First draws `num_pairs` pairs from Flow-1 (`pair_steps` Euler steps
    each) into `out_dir/pairs.npz`, resumably (see
    `keras_diffusion.reflow.generate_pairs`). Then trains Flow-2, with
    Flow-1's architecture and settings and starting from Flow-1's weights
    (as Liu et al., 2023, do), on exactly those pairs, with the training
    settings of the recipe `reflow`. Writes, as `train` does,
    `reflow.keras`, `log.csv`, `samples/` and, while training, `backup/`; a
    rerun of the same call after a crash resumes both stages.

    Args:
        flow: Flow-1: a trained `RectifiedFlow` (or `LatentRectifiedFlow`),
            or its shipped name or `.keras` path.
        num_pairs: int, pairs to draw (default: the recipe's).
        pair_steps: int, Euler steps of Flow-1 per pair (default: the
            recipe's).
        epochs, max_steps, batch_size, seed, learning_rate, sample_every,
        verbose: as for `train` (`seed` seeds the pairs' noise too).
        out_dir: str, output directory (default `runs/reflow/`).

    Returns:
        The path of the saved `.keras` model.
    """
    recipe = get_recipe("reflow")
    max_steps, batch_size = _check_settings(recipe, epochs, max_steps, batch_size,
                                            learning_rate, seed)
    num_pairs = check_int("num_pairs",
                          recipe["num_pairs"] if num_pairs is None else num_pairs)
    pair_steps = check_int("pair_steps",
                           recipe["pair_steps"] if pair_steps is None else pair_steps)
    if not isinstance(flow, RectifiedFlow):
        flow = load_model(flow, expected_type=RectifiedFlow)
    epochs, steps_per_epoch = _epoch_plan(num_pairs, batch_size, epochs, max_steps)
    out_dir = check_writable_dir(out_dir or os.path.join("runs", "reflow"))

    pairs = load_pairs(generate_pairs(
        flow, num_pairs, os.path.join(out_dir, "pairs.npz"), seed=seed,
        num_steps=pair_steps, progress=verbose > 0,
    ))
    keras.utils.set_random_seed(seed)
    model = copy_flow(flow, seed=seed, name="reflow")
    model.compile(optimizer=make_optimizer(recipe, learning_rate))
    dataset = make_dataset(pairs, batch_size=batch_size, seed=seed)
    return _fit_and_save(model, dataset, out_dir, "reflow", epochs,
                         steps_per_epoch, max_steps, learning_rate=learning_rate,
                         sample_every=sample_every, seed=seed, verbose=verbose)


def _check_settings(recipe, epochs, max_steps, batch_size, learning_rate, seed):
    """Checks the training flags; returns `max_steps` and `batch_size`
    with the recipe's defaults filled in."""
    if epochs is None and max_steps is None:
        max_steps = recipe["max_steps"]
    batch_size = recipe["batch_size"] if batch_size is None else int(batch_size)
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("max_steps", max_steps)):
        if value is not None and int(value) < 1:
            raise ValueError(f"`{name}` must be >= 1. Got {value}")
    if learning_rate is not None and not 0 < learning_rate < math.inf:
        raise ValueError(
            f"--learning-rate must be a positive number. Got {learning_rate}"
        )
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"--seed must be in 0 to {2**32 - 1}. Got {seed}")
    return max_steps, batch_size


def _check_batch_split(batch_size, replicas):
    """The global batch must split evenly among the replicas."""
    if replicas is None or batch_size % replicas.num_replicas == 0:
        return
    num = replicas.num_replicas
    lower = max(num, batch_size // num * num)
    raise ValueError(
        f"--batch-size ({batch_size}) is the global batch and must split evenly "
        f"among the {num} devices; pass a multiple of {num}, such as {lower} "
        f"or {lower + num}."
    )


def _epoch_plan(num_examples, batch_size, epochs, max_steps):
    """`(epochs, steps_per_epoch)` for `fit`, from the flags."""
    steps_per_epoch = num_examples // batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the data "
            f"({num_examples} examples); pass a smaller batch size."
        )
    if max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, int(max_steps))
        needed = math.ceil(int(max_steps) / steps_per_epoch)
        epochs = needed if epochs is None else min(int(epochs), needed)
    return epochs, steps_per_epoch


def _fit_and_save(model, dataset, out_dir, name, epochs, steps_per_epoch,
                  max_steps, learning_rate=None, sample_every=1, seed=0,
                  verbose=1, images=None, replicas=None):
    """Fits with resume, logging and sample grids; saves `<name>.keras`.

    With `replicas` (training on several hosts) only process 0 writes the
    model, the log and the sample grids; every process keeps its own backup
    (`backup/` for process 0, `backup-<id>/` for the others), so a rerun
    resumes on every host.
    """
    process_id = 0 if replicas is None else replicas.process_id
    chief = process_id == 0
    model_path = os.path.join(out_dir, f"{name}.keras")
    backup_dir = os.path.join(out_dir, "backup" if chief else f"backup-{process_id}")
    resuming = os.path.isdir(backup_dir)
    callbacks = [
        # Before the backup: an update can make the weights NaN while the
        # loss of that step (computed before it) is still finite.
        TerminateOnNonFiniteWeights(),
        keras.callbacks.BackupAndRestore(backup_dir),
        # Raising (not just stopping) skips the epoch-end backup, so the
        # backup keeps the last good epoch.
        keras.callbacks.TerminateOnNaN(raise_error=True),
        MaxSteps(max_steps, steps_per_epoch),
    ]
    if chief:
        callbacks.insert(
            2, keras.callbacks.CSVLogger(os.path.join(out_dir, "log.csv"),
                                         append=resuming))
    if learning_rate is not None:
        # After BackupAndRestore, which restores the backup's learning rate
        # with the optimizer: a rerun with a new --learning-rate uses it.
        callbacks.insert(2, SetLearningRate(learning_rate))
    if sample_every:
        grid = ReconstructionGrid if isinstance(model, VAE) else SampleGrid
        # Every process draws the grid (on several hosts a computation with
        # the model's variables involves them all); process 0 writes it.
        callbacks.append(
            grid(os.path.join(out_dir, "samples"), every=sample_every, seed=seed,
                 images=images, write=chief)
        )
    try:
        # The dataset shuffles itself (`make_dataset`); shuffle=False keeps
        # Keras from warning that it cannot shuffle a tf.data.Dataset.
        model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
    except RuntimeError as error:
        if "NaN or Inf" not in str(error):
            raise
        if os.path.isdir(backup_dir) and os.listdir(backup_dir):
            kept = (f"The last good epoch is kept in {backup_dir!r}; rerunning "
                    "resumes from it")
        else:
            kept = "No epoch had completed, so there is nothing to resume; rerun"
        raise TrainingError(
            f"Training stopped: {error} {kept} (try a lower --learning-rate)."
        ) from None
    if chief:
        with atomic_path(model_path) as tmp:
            model.save(tmp)
    if replicas is not None and replicas.num_processes > 1:
        # The other hosts may read the model next (a latent kind's VAE).
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"saved {model_path}")
    shutil.rmtree(backup_dir, ignore_errors=True)
    return model_path


def _get_vae(vae, out_dir, **train_kwargs):
    """Loads the given VAE, or trains one into `out_dir/vae/` (reused).

    `train_kwargs` (data, and the step and batch settings the user gave)
    apply to the VAE's training too.
    """
    if isinstance(vae, VAE):
        return vae
    if vae is None:
        vae = os.path.join(out_dir, "vae", "vae.keras")
        if not os.path.isfile(vae):
            vae = train("vae", out_dir=os.path.dirname(vae), **train_kwargs)
    return load_model(vae, expected_type=VAE)


class TerminateOnNonFiniteWeights(keras.callbacks.Callback):
    """Raises at an epoch's end, before it is backed up, if a weight is NaN/Inf."""

    def on_epoch_end(self, epoch, logs=None):
        for variable in self.model.trainable_variables:
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
                raise RuntimeError(
                    f"NaN or Inf weights at the end of epoch {epoch + 1} "
                    f"({variable.path}). Stopping training."
                )


class SetLearningRate(keras.callbacks.Callback):
    """Sets the optimizer's learning rate when training (re)starts."""

    def __init__(self, learning_rate):
        super().__init__()
        self.learning_rate = float(learning_rate)

    def on_train_begin(self, logs=None):
        self.model.optimizer.learning_rate = self.learning_rate


class MaxSteps(keras.callbacks.Callback):
    """Stops training once `max_steps` optimizer steps are done in total."""

    def __init__(self, max_steps, steps_per_epoch):
        super().__init__()
        self.max_steps = max_steps
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        if self.max_steps is not None and step >= self.max_steps:
            self.model.stop_training = True


class SampleGrid(keras.callbacks.Callback):
    """Writes a grid of samples at the end of every `every` epochs, drawn
    with the model's default sampler (DDIM, or Euler for a flow)."""

    def __init__(self, directory, every=1, num_images=16, num_steps=20, seed=0,
                 images=None, write=True):
        super().__init__()
        self.directory = directory
        self.every = every
        self.num_images = num_images
        self.num_steps = num_steps
        self.seed = seed
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        num_images, kwargs, num_columns = self.num_images, {}, None
        if getattr(self.model, "conditional", False):
            # Two rows, one column per class, with moderate guidance.
            labels = np.tile(np.arange(self.model.num_classes), 2)
            num_images, num_columns = len(labels), self.model.num_classes
            kwargs = {"labels": labels, "guidance": 3.0}
        images = self.model.generate(
            num_images, sampler=None, num_steps=self.num_steps, seed=self.seed,
            progress=False, **kwargs,
        )
        if not self.write:
            return
        os.makedirs(self.directory, exist_ok=True)
        save_image_grid(images, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png"),
                        num_columns=num_columns)


class ReconstructionGrid(keras.callbacks.Callback):
    """Writes 8 training images (top) over their VAE reconstructions."""

    def __init__(self, directory, every=1, seed=0, images=None, write=True):
        super().__init__()
        self.directory = directory
        self.every = every
        self.images = images[:8]
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        reconstructions = keras.ops.convert_to_numpy(self.model.reconstruct(self.images))
        if not self.write:
            return
        both = (np.concatenate([self.images, reconstructions]) + 1.0) / 2.0
        os.makedirs(self.directory, exist_ok=True)
        save_image_grid(both, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png"),
                        num_columns=len(self.images))
