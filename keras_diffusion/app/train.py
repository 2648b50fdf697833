"""`train()`: the library function behind `kd train KIND`."""

import collections
import contextlib
import math
import os
import shutil

import keras

from keras_diffusion.callbacks import FIDCallback
from keras_diffusion.data import DataError
from keras_diffusion.data import describe_data
from keras_diffusion.data import load_images
from keras_diffusion.data import make_dataset
from keras_diffusion.data.splits import hold_out_test
from keras_diffusion.metrics import as_evaluator
from keras_diffusion.data import to_model_range
from keras_diffusion.app.distribution import cpu_data_parallel
from keras_diffusion.app.distribution import data_parallel
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.models import NoisyClassifier
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.models import VAE
from keras_diffusion.presets import ModelFileError
from keras_diffusion.presets import save_to_preset
from keras_diffusion.presets import load_model
from keras_diffusion.app.callbacks import BACKUP_EVERY
from keras_diffusion.app.callbacks import Backup
from keras_diffusion.app.callbacks import ReconstructionGrid
from keras_diffusion.app.callbacks import SampleGrid
from keras_diffusion.app.callbacks import SetLearningRate
from keras_diffusion.app.callbacks import StepLimit
from keras_diffusion.app.recipes import RECIPES
from keras_diffusion.app.recipes import EvaluatorRecipe
from keras_diffusion.app.recipes import build_model
from keras_diffusion.app.recipes import get_recipe
from keras_diffusion.app.reflow_pairs import copy_flow
from keras_diffusion.app.reflow_pairs import generate_pairs
from keras_diffusion.app.reflow_pairs import load_pairs
from keras_diffusion.utils.checks import check_int
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_dir
from keras_diffusion.utils.lock import lock_directory


# Images sampled and scored per FID evaluation of `train(eval_every=...)`.
EVAL_IMAGES = 256


class TrainingError(RuntimeError):
    """Training stopped early; the message says why and what was kept."""


def train(kind, data=None, epochs=None, max_steps=None, batch_size=None,
          out_dir=None, seed=0, learning_rate=None, sample_every=1, verbose=1,
          vae=None, distribute=None, overwrite=False, backup_every=BACKUP_EVERY,
          eval_every=None, eval_images=EVAL_IMAGES, image_size=None,
          channels=None, callbacks=(), evaluator=None):
    """Trains the model of the recipe `kind` on a set of images and saves it.

    The networks are built for the data: its height, width and channels,
    and, for the class-conditional kinds, its class count (those need
    labelled data). The recipes' settings are MNIST's (28x28x1, 10
    classes); other data needs a height and width that the networks can
    halve twice (multiples of 4; `image_size` resizes).

    Writes to `out_dir` (default `runs/<kind>/`): `<kind>.keras` (the final
    model, EMA weights, with its optimizer so training can continue),
    `log.csv` (loss per epoch, appended to across reruns), `samples/epoch_NNN.png`
    (a sample grid, or for a VAE originals over reconstructions, at the end of
    every `sample_every` epochs) and, while training, `backup/`. Latent kinds
    without `vae` first train one into `out_dir/vae/` (reused on a rerun).

    Rerunning the same call continues where the last run stopped:
    - after a crash, Ctrl-C or SIGKILL, from the last backup (every
      `backup_every` steps and at every epoch's end), printing
      `Resuming from step N`;
    - after a finished run, it prints that the run is complete and leaves
      the model untouched, unless the call asks for more steps than the
      model has had: then it trains the saved model on up to them.
    `overwrite=True` starts over instead. One process at a time may train in
    `out_dir` (an OS file lock; see `keras_diffusion.utils.lock`).

    Args:
        kind: str, a recipe name (see `keras_diffusion.app.recipes.RECIPES`).
        data: what `keras_diffusion.data.load_images` reads: `None` (MNIST
            through tensorflow-datasets), `"tfds:NAME[:SPLIT]"`, a folder of
            images (class sub-folders for labels), an MNIST IDX directory
            or an `.npz`.
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
            with `keras_diffusion.app.distribution.data_parallel`; `batch_size`
            is then the global batch, split evenly among the devices. Only
            process 0 writes files. See docs/distributed.md. `None` (the
            default): data-parallel only over the CPU devices that
            `keras_diffusion.utils.jax_cpu.split_cpu_into_devices` gives
            JAX (`kd` does this), when the batch splits evenly among them;
            otherwise one device. `False`: always one device.
        overwrite: bool, start over: discard the backup, the log and a
            finished model of an earlier run in `out_dir` (the model is
            replaced only when the new one is saved).
        backup_every: int >= 1, optimizer steps between backups.
        eval_every: int >= 1 or `None`: every this many optimizer steps,
            sample `eval_images` images and write their FID against as many
            test images of `data` (held out of it if it has no test split,
            `keras_diffusion.data.load_splits`) to `out_dir/fid.csv`, and
            the latest into `log.csv` (`keras_diffusion.callbacks.FIDCallback`;
            the diffusion and flow kinds only).
        eval_images: int >= 2, images per FID evaluation.
        evaluator: the judge of `eval_every`, anything
            `keras_diffusion.metrics.as_evaluator` takes (`None`: the
            shipped MNIST evaluator); for other images, one that `kd train
            evaluator --data` trained on them.
        image_size: `None` (the images' own size, one for all), an int
            (square) or `(height, width)`: resize every image.
        channels: `None` (the images' own), 1 or 3: convert to grayscale
            or RGB.
        callbacks: more `keras.callbacks.Callback`s for `fit` (their
            `logs` go into `log.csv`); not for the VAE a latent kind trains
            first.

    Returns:
        The path of the saved `.keras` model.
    """
    if eval_every is not None:
        # Loaded outside the distribution: under JAX a model loaded inside
        # one gets a mix of one-device and replicated variables, which its
        # predict function refuses.
        evaluator = as_evaluator(evaluator)
    if distribute:
        context = data_parallel()
    elif distribute is None:
        context = cpu_data_parallel(batch_size or get_recipe(kind).batch_size)
    else:
        context = contextlib.nullcontext()
    with context as replicas:
        if replicas is not None and verbose:
            if not distribute:
                print(f"Training data-parallel on {replicas.num_replicas} JAX CPU "
                      "devices, one per core (see keras_diffusion/utils/jax_cpu.py).")
            elif replicas.num_replicas == 1:
                print("Data-parallel training found one device only; training "
                      "on it alone.")
        return _train(kind, data, epochs, max_steps, batch_size, out_dir, seed,
                      learning_rate, sample_every, verbose, vae, replicas,
                      overwrite, backup_every, eval_every, eval_images,
                      image_size, channels, callbacks, evaluator)


def _train(kind, data, epochs, max_steps, batch_size, out_dir, seed,
           learning_rate, sample_every, verbose, vae, replicas, overwrite,
           backup_every, eval_every, eval_images, image_size, channels,
           extra_callbacks, evaluator):
    """`train`, inside the distribution (`replicas`) if there is one."""
    recipe = get_recipe(kind)
    kind = recipe.name
    if recipe.from_flow:
        raise ValueError(f"{kind!r} starts from a trained flow: use "
                         f"`train_reflow(flow, kind={kind!r})` "
                         f"(`kd train {kind} --from FLOW`).")
    if isinstance(recipe, EvaluatorRecipe):
        raise ValueError("The evaluator trains for epochs, with augmentation: use "
                         "`train_evaluator.train_evaluator` (`kd train evaluator`).")
    requested = {"epochs": epochs, "max_steps": max_steps, "batch_size": batch_size}
    max_steps, batch_size = _check_settings(recipe, epochs, max_steps, batch_size,
                                            learning_rate, seed)
    backup_every = check_int("backup_every", backup_every)
    _check_batch_split(batch_size, replicas)
    if vae is not None and not recipe.needs_vae:
        raise ValueError(f"`vae` applies to latent models, not to {kind!r}.")
    # Every check on the input comes before the output directory is made.
    if vae is not None and not isinstance(vae, VAE):
        vae = load_model(vae, expected_type=VAE)
    loaded = load_images(data, "train", image_size, channels)
    images, labels = loaded.images, loaded.labels
    image_shape, num_classes = images.shape[1:], loaded.num_classes
    _check_data_for(recipe, loaded, vae)
    plan = _epoch_plan(len(images), batch_size, epochs, max_steps)
    if eval_every is not None:
        if not recipe.draws_samples:
            raise ValueError(f"`eval_every` (FID while training) applies to the "
                             f"diffusion and flow kinds, not to {kind!r}.")
        eval_every = check_int("eval_every", eval_every)
        eval_images = check_int("eval_images", eval_images, minimum=2)
        evaluator = as_evaluator(evaluator)
        evaluator.check_image_shape(image_shape,
                                    "The training images (`eval_every` scores "
                                    "samples like them)")
        _, test = hold_out_test(
            loaded, load_images(data, "test", image_size, channels))
        test_images = test.images
        if len(test_images) < eval_images:
            raise ValueError(
                f"`eval_images` ({eval_images}) is more than the "
                f"{len(test_images)} test images of the data to compare "
                "with; pass a smaller `eval_images`.")
    out_dir = check_writable_dir(out_dir or os.path.join("runs", kind))
    callbacks = list(extra_callbacks)
    if eval_every is not None:
        # FID against the first `eval_images` test images.
        callbacks.append(FIDCallback(
            reference_images=test_images[:eval_images], every_steps=eval_every,
            num_images=eval_images, seed=seed, append=True, evaluator=evaluator,
            # Every process samples (with several hosts the model's
            # variables involve them all); process 0 writes.
            log_path=(os.path.join(out_dir, "fid.csv")
                      if replicas is None or replicas.process_id == 0 else None)))
    if verbose:  # after every check on the input, which says only its error
        print(f"Data: {describe_data(loaded)}")
    with _lock(out_dir, replicas):
        complete, model = _earlier_run(out_dir, kind, plan, overwrite, verbose)
        if complete:
            return os.path.join(out_dir, f"{kind}.keras")
        images = to_model_range(images)
        if model is None:
            vae_model, latent_scale = None, 1.0
            if recipe.needs_vae:
                vae_model = _get_vae(vae, out_dir, data=data, seed=seed,
                                     verbose=verbose, image_size=image_size,
                                     channels=channels,
                                     distribute=replicas is not None, **requested)
                latent_scale = LatentDiffusion.compute_latent_scale(vae_model, images)
            keras.utils.set_random_seed(seed)
            model = build_model(recipe, seed=seed, learning_rate=learning_rate,
                                vae=vae_model, latent_scale=latent_scale,
                                total_steps=plan.total_steps,
                                image_shape=image_shape, num_classes=num_classes)
        if isinstance(model, NoisyClassifier):
            sample_every = 0  # a classifier draws no samples
        dataset = make_dataset(images, labels if recipe.conditional else None,
                               batch_size=batch_size, seed=seed)
        return _fit_and_save(model, dataset, out_dir, kind, plan,
                             learning_rate=learning_rate,
                             sample_every=sample_every, seed=seed, verbose=verbose,
                             images=images, replicas=replicas,
                             backup_every=backup_every, callbacks=callbacks)


def train_reflow(flow, num_pairs=None, epochs=None, max_steps=None,
                 batch_size=None, out_dir=None, seed=0, learning_rate=None,
                 sample_every=1, verbose=1, pair_steps=None, overwrite=False,
                 backup_every=BACKUP_EVERY, callbacks=(), kind="reflow",
                 pair_sampler=None):
    """Reflow: trains a new flow on (noise, image) pairs drawn from a flow.

    First draws `num_pairs` pairs from `flow` (`pair_steps` steps of
    `pair_sampler` each) into `out_dir/pairs.npz`, resumably (see
    `keras_diffusion.app.reflow_pairs.generate_pairs`). Then trains the new
    flow, with `flow`'s architecture and settings and starting from its
    weights (as Liu et al., 2023, do), on exactly those pairs, with the
    training settings of the recipe `kind` (its `time_sampling` and
    `velocity_loss` among them):
    `"reflow"` trains Flow-2 from Flow-1 (`"reflow-uniform"`: the same at
    uniform t, the first recipe); `"distill"` a one-step student (best
    from Flow-2). Writes, as `train` does, `KIND.keras`, `log.csv`,
    `samples/` and, while training, `backup/`; a rerun of the same call
    resumes both stages, or reports a finished run complete, as `train`
    does.

    Args:
        flow: the trained flow the pairs come from: a `RectifiedFlow` (or
            `LatentRectifiedFlow`), or its shipped name or `.keras` path.
        num_pairs: int, pairs to draw (default: the recipe's).
        pair_steps: int, sampler steps of `flow` per pair (default: the
            recipe's).
        pair_sampler: `"euler"` or `"heun"`, the sampler that draws the
            pairs (default: the recipe's).
        epochs, max_steps, batch_size, seed, learning_rate, sample_every,
        verbose, overwrite, backup_every, callbacks: as for `train` (`seed`
        seeds the pairs' noise too; `overwrite` keeps the pairs).
        out_dir: str, output directory (default `runs/KIND/`).
        kind: `"reflow"`, `"reflow-uniform"` or `"distill"`, a recipe that
            starts from a flow.

    Returns:
        The path of the saved `.keras` model.
    """
    recipe = get_recipe(kind)
    if not recipe.from_flow:
        pair_kinds = [name for name, each in RECIPES.items() if each.from_flow]
        raise ValueError(f"`kind` must be a kind trained on a flow's pairs "
                         f"({', '.join(pair_kinds)}). Got {kind!r}")
    name = recipe.name
    max_steps, batch_size = _check_settings(recipe, epochs, max_steps, batch_size,
                                            learning_rate, seed)
    num_pairs = check_int("num_pairs",
                          recipe.num_pairs if num_pairs is None else num_pairs)
    pair_steps = check_int("pair_steps",
                           recipe.pair_steps if pair_steps is None else pair_steps)
    backup_every = check_int("backup_every", backup_every)
    if not isinstance(flow, RectifiedFlow):
        flow = load_model(flow, expected_type=RectifiedFlow)
    pair_sampler = pair_sampler or recipe.pair_sampler
    flow.make_sampler(pair_sampler, pair_steps)  # raises on an unknown sampler
    plan = _epoch_plan(num_pairs, batch_size, epochs, max_steps)
    out_dir = check_writable_dir(out_dir or os.path.join("runs", name))

    with _lock(out_dir):
        complete, model = _earlier_run(out_dir, name, plan, overwrite, verbose)
        if complete:
            return os.path.join(out_dir, f"{name}.keras")
        pairs = load_pairs(generate_pairs(
            flow, num_pairs, os.path.join(out_dir, "pairs.npz"), seed=seed,
            num_steps=pair_steps, progress=verbose > 0,
            sampler=pair_sampler,
        ))
        if model is None:
            keras.utils.set_random_seed(seed)
            model = copy_flow(flow, seed=seed, name=name,
                              **recipe.model_settings())
            model.compile(optimizer=recipe.optimizer(learning_rate,
                                                     plan.total_steps))
        dataset = make_dataset(pairs, batch_size=batch_size, seed=seed)
        return _fit_and_save(model, dataset, out_dir, name, plan,
                             learning_rate=learning_rate,
                             sample_every=sample_every, seed=seed,
                             verbose=verbose, backup_every=backup_every,
                             callbacks=callbacks)


def _check_data_for(recipe, data, vae=None):
    """Raises `DataError` unless `recipe` can train on `data` (and `vae`)."""
    recipe.check_image_shape(data.images.shape[1:])
    if recipe.needs_vae and vae is None:  # it trains a VAE first
        get_recipe("vae").check_image_shape(data.images.shape[1:])
    if recipe.conditional and data.labels is None:
        raise DataError(
            f"`kd train {recipe.name}` is class-conditional, and the images "
            f"from {data.source!r} have no labels: put each class in its own "
            "sub-folder (or give labels in the .npz), or train an "
            "unconditional kind."
        )
    if recipe.conditional and data.num_classes < 2:
        raise DataError(
            f"`kd train {recipe.name}` learns to tell classes apart, and the "
            f"images from {data.source!r} have one class only."
        )
    if vae is not None:
        vae_shape = tuple(vae.encoder.input.shape[1:])
        if vae_shape != data.images.shape[1:]:
            raise DataError(
                f"The VAE encodes {'x'.join(map(str, vae_shape))} images, but "
                f"the images from {data.source!r} are "
                f"{'x'.join(map(str, data.images.shape[1:]))}: train a VAE on "
                "these images (leave out `vae`), or resize them (`image_size`, "
                "`channels`)."
            )


def _lock(out_dir, replicas=None):
    """The lock on `out_dir` (process 0's alone when training on several
    hosts, which may share the directory)."""
    if replicas is not None and replicas.process_id != 0:
        return contextlib.nullcontext()
    return lock_directory(out_dir)


def _check_settings(recipe, epochs, max_steps, batch_size, learning_rate, seed):
    """Checks the training flags; returns `max_steps` and `batch_size`
    with the recipe's defaults filled in."""
    if epochs is None and max_steps is None:
        max_steps = recipe.max_steps
    batch_size = recipe.batch_size if batch_size is None else int(batch_size)
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("max_steps", max_steps)):
        if value is not None and int(value) < 1:
            raise ValueError(f"`{name}` must be >= 1. Got {value}")
    if learning_rate is not None and not 0 < learning_rate < math.inf:
        raise ValueError(
            f"`learning_rate` must be a positive number. Got {learning_rate}"
        )
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"`seed` must be in 0 to {2**32 - 1}. Got {seed}")
    return max_steps, batch_size


def _check_batch_split(batch_size, replicas):
    """The global batch must split evenly among the replicas."""
    if replicas is None or batch_size % replicas.num_replicas == 0:
        return
    num = replicas.num_replicas
    lower = max(num, batch_size // num * num)
    raise ValueError(
        f"`batch_size` ({batch_size}) is the global batch and must split evenly "
        f"among the {num} devices; pass a multiple of {num}, such as {lower} "
        f"or {lower + num}."
    )


# `fit`'s epochs and steps per epoch, and the optimizer steps of the whole
# run (which a resumed or continued run also ends at).
EpochPlan = collections.namedtuple(
    "EpochPlan", ["epochs", "steps_per_epoch", "total_steps"])


def _epoch_plan(num_examples, batch_size, epochs, max_steps):
    """The `EpochPlan` for `fit`, from the flags."""
    steps_per_epoch = num_examples // batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the data "
            f"({num_examples} examples); pass a smaller batch size."
        )
    total_steps = None
    if max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, int(max_steps))
        needed = math.ceil(int(max_steps) / steps_per_epoch)
        epochs = needed if epochs is None else min(int(epochs), needed)
        total_steps = int(max_steps)
    total_steps = min(total_steps or math.inf, int(epochs) * steps_per_epoch)
    return EpochPlan(int(epochs), steps_per_epoch, int(total_steps))


def _earlier_run(out_dir, name, plan, overwrite, verbose):
    """What an earlier run in `out_dir` leaves to do: `(complete, model)`.

    - `overwrite`: discards its backup and log; `(False, None)`.
    - A backup (a run that stopped early): `(False, None)`; `fit` restores it.
    - A finished model that has had `plan.total_steps` steps or more:
      `(True, None)`, after saying so; the model is left untouched.
    - A finished model that has had fewer: `(False, model)`, loaded with its
      optimizer, to train on.
    - Nothing: `(False, None)`.
    """
    model_path = os.path.join(out_dir, f"{name}.keras")
    backup_dir = os.path.join(out_dir, "backup")
    if overwrite:
        shutil.rmtree(backup_dir, ignore_errors=True)
        for leftover in ("log.csv", "fid.csv"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out_dir, leftover))
        return False, None
    if os.path.isdir(backup_dir) or not os.path.exists(model_path):
        return False, None
    try:
        # With its optimizer (the step count, the moments and the EMA).
        model = keras.saving.load_model(model_path)
    except Exception as error:  # Keras raises many kinds for a bad file
        raise ModelFileError(
            f"Could not load {model_path!r}, the model of an earlier run in "
            f"{out_dir!r} ({type(error).__name__}); pass `overwrite` to train a "
            "new one in its place."
        ) from None
    if getattr(model, "optimizer", None) is None or not model.optimizer.built:
        raise ValueError(
            f"{model_path!r} was saved without its optimizer, so training "
            "cannot continue from it; pass `overwrite` to train a new one in "
            "its place."
        )
    done = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if done >= plan.total_steps:
        if verbose:
            print(f"{model_path} is complete: trained for {done} steps (this "
                  f"run asks for {plan.total_steps}). Ask for more steps "
                  "(--max-steps) to continue it, or --overwrite to start over.")
        return True, None
    if verbose:
        print(f"Continuing {model_path} from step {done} to {plan.total_steps}.")
    return False, model


def _fit_and_save(model, dataset, out_dir, name, plan, learning_rate=None,
                  sample_every=1, seed=0, verbose=1, images=None, replicas=None,
                  backup_every=BACKUP_EVERY, callbacks=()):
    """Fits with resume, logging and sample grids; saves `<name>.keras`.

    Trains until the optimizer has made `plan.total_steps` steps in all, so
    a run resumed from its backup, or a finished model trained on, ends
    where a run without a break would. With `replicas` (training on several
    hosts) only process 0 writes the model, the log and the sample grids;
    every process keeps its own backup (`backup/` for process 0,
    `backup-<id>/` for the others), so a rerun resumes on every host.
    """
    process_id = 0 if replicas is None else replicas.process_id
    chief = process_id == 0
    model_path = os.path.join(out_dir, f"{name}.keras")
    backup_dir = os.path.join(out_dir, "backup" if chief else f"backup-{process_id}")
    callbacks = [
        # Before the backup: a NaN loss stops training before that step is
        # backed up, so the backup keeps the last good step.
        keras.callbacks.TerminateOnNaN(raise_error=True),
        Backup(backup_dir, save_freq=backup_every),
        StepLimit(plan.total_steps, verbose=verbose),
        *callbacks,  # before the CSVLogger, which logs what they add
    ]
    if chief:
        # Appends across reruns (only `overwrite` removes the log).
        callbacks.append(keras.callbacks.CSVLogger(
            os.path.join(out_dir, "log.csv"), append=True))
    if learning_rate is not None:
        # After Backup, which restores the backup's learning rate with the
        # optimizer: a rerun with a new --learning-rate uses it.
        callbacks.append(SetLearningRate(learning_rate))
    if sample_every:
        grid = ReconstructionGrid if isinstance(model, VAE) else SampleGrid
        # Every process draws the grid (on several hosts a computation with
        # the model's variables involves them all); process 0 writes it.
        callbacks.append(
            grid(os.path.join(out_dir, "samples"), every=sample_every, seed=seed,
                 images=images, write=chief)
        )
    done = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    # A backup of the last step (the run stopped before saving its model):
    # `fit` with no epoch left restores it and swaps in the EMA weights.
    epochs = 0 if Backup.backed_up_steps(backup_dir) >= plan.total_steps else plan.epochs
    try:
        # The dataset shuffles itself (`make_dataset`); shuffle=False keeps
        # Keras from warning that it cannot shuffle a tf.data.Dataset.
        model.fit(dataset, epochs=epochs, steps_per_epoch=plan.steps_per_epoch,
                  initial_epoch=done // plan.steps_per_epoch,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
    except RuntimeError as error:
        if "NaN or Inf" not in str(error):
            raise
        if os.path.isdir(backup_dir) and os.listdir(backup_dir):
            kept = (f"The last good backup is kept in {backup_dir!r}; rerunning "
                    "resumes from it")
        else:
            kept = "No step had been backed up, so there is nothing to resume; rerun"
        raise TrainingError(
            f"Training stopped: {error} {kept} (try a lower `learning_rate`)."
        ) from None
    if chief:
        with atomic_path(model_path) as tmp:
            model.save(tmp)  # with the optimizer, to continue training
        # Beside it, the preset to share (no optimizer; docs/sharing.md).
        preset_dir = os.path.join(out_dir, "preset")
        save_to_preset(model, preset_dir)
        if verbose:
            print(f"Saved {model_path} and the preset {preset_dir}")
    if replicas is not None and replicas.num_processes > 1:
        # The other hosts may read the model next (a latent kind's VAE).
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"saved {model_path}")
    # Only now: a crash before the model is saved leaves the backup.
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
