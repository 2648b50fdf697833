"""The callbacks of `kd train`: backups, the step limit, sample grids."""

import json
import os

import keras
import numpy as np

from keras_diffusion.guidance import DEFAULT_GUIDANCE
from keras_diffusion.guidance import cycled_labels
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.viz import save_image_grid

# Optimizer steps between backups: a rerun after a crash or Ctrl-C loses at
# most this many (there is a backup at every epoch's end too).
BACKUP_EVERY = 10


def _check_finite_weights(model, when):
    """Raises `RuntimeError` if a trainable weight is NaN or Inf."""
    for variable in model.trainable_variables:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
            raise RuntimeError(
                f"NaN or Inf weights {when} ({variable.path}). Stopping training."
            )


class Backup(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore`, backing up every `save_freq` steps and at
    every epoch's end, safely.

    On top of Keras' callback:
    - Never backs up NaN or Inf weights (it raises instead), so the backup
      is always the last good state: an update can make the weights NaN
      while the loss of its step, computed before it, is still finite.
    - Writes each file to a temporary name and renames it, so a kill while
      writing leaves the previous backup whole.
    - Counts epochs from the one it resumed in, so a run killed again before
      an epoch ends resumes in that epoch, not at epoch 0.
    - Keeps the backup at the end of `fit` (`train` removes it once the
      model is saved).

    A run resumed in the middle of an epoch restores the weights, the
    optimizer (and its step count) and the noise generator, and starts that
    epoch's batches from its first.
    """

    def __init__(self, backup_dir, save_freq=BACKUP_EVERY):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
        self._at_epoch_end = False

    @staticmethod
    def backed_up_steps(backup_dir):
        """The optimizer steps of the backup in `backup_dir` (0 if none)."""
        try:
            with open(os.path.join(backup_dir, "training_metadata.json")) as f:
                return int(json.load(f).get("step", 0))
        except (OSError, ValueError):
            return 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._at_epoch_end = True
            self._save_model()
            self._at_epoch_end = False
            self._batches_seen_since_last_saving = 0

    def _save_model(self):
        model = self.model
        steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        _check_finite_weights(
            model, f"at the end of epoch {self._current_epoch} (step {steps})"
            if self._at_epoch_end else f"after step {steps}")
        os.makedirs(self.backup_dir, exist_ok=True)
        partial = os.path.join(self.backup_dir, "partial.weights.h5")
        model.save_weights(partial, overwrite=True)
        os.replace(partial, self._weights_path)
        with atomic_path(self._training_metadata_path) as tmp, open(tmp, "w") as f:
            json.dump({"epoch": self._current_epoch, "step": steps}, f)


class StepLimit(keras.callbacks.Callback):
    """Stops training once the optimizer has made `total_steps` steps in all
    (counting those of a restored backup), and says where a resumed run
    starts from.

    Put it after the `Backup`, whose restore it reports.
    """

    def __init__(self, total_steps, verbose=1):
        super().__init__()
        self.total_steps = total_steps
        self.verbose = verbose
        self.step = 0

    def on_train_begin(self, logs=None):
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.step and self.verbose:
            print(f"Resuming from step {self.step} of {self.total_steps}.")

    def on_train_batch_end(self, batch, logs=None):
        # Counted here, not read from the optimizer: under JAX, reading the
        # model's variables in the middle of an epoch costs a state sync.
        self.step += 1
        if self.step >= self.total_steps:
            self.model.stop_training = True


class SetLearningRate(keras.callbacks.Callback):
    """Sets the optimizer's learning rate when training (re)starts.

    An optimizer with a learning-rate schedule (a `"cosine"` recipe) keeps
    it: the schedule was built with the run's learning rate.
    """

    def __init__(self, learning_rate):
        super().__init__()
        self.learning_rate = float(learning_rate)

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if isinstance(optimizer._learning_rate,
                      keras.optimizers.schedules.LearningRateSchedule):
            return
        optimizer.learning_rate = self.learning_rate


class EpochGrid(keras.callbacks.Callback):
    """Writes `directory/epoch_NNN.png` at the end of every `every` epochs:
    the grid that `draw()` returns (`write=False`: draws it only, as the
    other hosts of a multi-host run do)."""

    def __init__(self, directory, every=1, write=True):
        super().__init__()
        self.directory = directory
        self.every = every
        self.write = write

    def draw(self):
        """`(images in [0, 1], num_columns or None)`."""
        raise NotImplementedError

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        images, num_columns = self.draw()
        if not self.write:
            return
        os.makedirs(self.directory, exist_ok=True)
        save_image_grid(images, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png"),
                        num_columns=num_columns)


class SampleGrid(EpochGrid):
    """Samples drawn with the model's `default_sampler`; a conditional
    model's in two rows, one column per class."""

    def __init__(self, directory, every=1, num_images=16, num_steps=20, seed=0,
                 images=None, write=True):
        super().__init__(directory, every, write)
        self.num_images = num_images
        self.num_steps = num_steps
        self.seed = seed

    def draw(self):
        num_images, kwargs, num_columns = self.num_images, {}, None
        if getattr(self.model, "conditional", False):
            # Two rows, one column per class, with the default guidance.
            num_classes = self.model.num_classes
            num_images, num_columns = 2 * num_classes, num_classes
            kwargs = {"labels": cycled_labels(num_classes, num_images),
                      "guidance": DEFAULT_GUIDANCE}
        images = self.model.generate(
            num_images, sampler=None, num_steps=self.num_steps, seed=self.seed,
            progress=False, **kwargs,
        )
        return images, num_columns


class ReconstructionGrid(EpochGrid):
    """8 training images (top) over their VAE reconstructions."""

    def __init__(self, directory, every=1, seed=0, images=None, write=True):
        super().__init__(directory, every, write)
        self.images = images[:8]

    def draw(self):
        reconstructions = keras.ops.convert_to_numpy(self.model.reconstruct(self.images))
        both = (np.concatenate([self.images, reconstructions]) + 1.0) / 2.0
        return both, len(self.images)
