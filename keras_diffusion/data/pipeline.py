"""Input pipelines that keep training fed: shuffle, batch, repeat, prefetch."""

import keras
import numpy as np


def make_dataset(images, labels=None, batch_size=128, shuffle=True, seed=0,
                 repeat=True):
    """A `tf.data.Dataset` of image batches (and label batches, if given).

    Works under every Keras backend: `model.fit` accepts `tf.data` on JAX and
    PyTorch too. Batches are full-size (`drop_remainder`), so compiled train
    steps see one shape; prefetching overlaps input with training. Where
    TensorFlow is not installed (a JAX or PyTorch machine without it), the
    same batches come from `ArrayBatches`, a `keras.utils.PyDataset` (in
    another shuffled order).

    Args:
        images: float32 array `(N, H, W, C)` in [-1, 1]; or a dict of
            arrays with `N` rows each (such as reflow pairs), whose batches
            are dicts.
        labels: optional int array `(N,)`.
        batch_size: int.
        shuffle: bool, reshuffle each pass.
        seed: int, seeds the shuffle.
        repeat: bool, repeat forever (`fit` then needs `steps_per_epoch`).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Got {batch_size}")
    count = len(next(iter(images.values())) if isinstance(images, dict) else images)
    if batch_size > count:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the data "
            f"({count} images); pass a smaller batch size."
        )
    tensors = images if labels is None else (images, np.asarray(labels, "int32"))
    try:
        import tensorflow as tf
    except ImportError:
        return ArrayBatches(tensors, batch_size, shuffle=shuffle, seed=seed,
                            repeat=repeat)
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


class ArrayBatches(keras.utils.PyDataset):
    """Full-size batches of in-memory arrays, reshuffled each pass: the
    input pipeline `make_dataset` gives where TensorFlow is not installed.

    Args:
        tensors: an array, a tuple of arrays or a dict of arrays, each with
            the same number of rows.
        batch_size: int, rows per batch (a last, smaller batch is dropped).
        shuffle: bool, a new order for every pass (seeded by `seed` and
            the pass's number).
        seed: int.
        repeat: bool, endless (`fit` then needs `steps_per_epoch`), or one
            pass.
    """

    def __init__(self, tensors, batch_size, shuffle=True, seed=0, repeat=True):
        super().__init__()
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.repeat = repeat
        first = keras.tree.flatten(tensors)[0]
        self.batches_per_pass = len(first) // batch_size
        self._pass, self._order = None, None

    @property
    def num_batches(self):
        return None if self.repeat else self.batches_per_pass

    def __getitem__(self, index):
        this_pass, position = divmod(index, self.batches_per_pass)
        rows = self._rows_of(this_pass)[position * self.batch_size:
                                        (position + 1) * self.batch_size]
        return keras.tree.map_structure(lambda array: array[rows], self.tensors)

    def _rows_of(self, this_pass):
        if self._pass != this_pass:
            count = self.batches_per_pass * self.batch_size
            total = len(keras.tree.flatten(self.tensors)[0])
            order = (np.random.default_rng([self.seed, this_pass]).permutation(total)
                     if self.shuffle else np.arange(total))
            self._pass, self._order = this_pass, order[:count]
        return self._order
