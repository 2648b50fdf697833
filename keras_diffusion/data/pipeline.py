"""Input pipelines that keep training fed: shuffle, batch, repeat, prefetch."""

import numpy as np


def make_dataset(images, labels=None, batch_size=128, shuffle=True, seed=0,
                 repeat=True):
    """A `tf.data.Dataset` of image batches (and label batches, if given).

    Works under every Keras backend: `model.fit` accepts `tf.data` on JAX and
    PyTorch too. Batches are full-size (`drop_remainder`), so compiled train
    steps see one shape; prefetching overlaps input with training.

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
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Got {batch_size}")
    count = len(next(iter(images.values())) if isinstance(images, dict) else images)
    if batch_size > count:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the data "
            f"({count} images); pass a smaller batch size."
        )
    tensors = images if labels is None else (images, np.asarray(labels, "int32"))
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
