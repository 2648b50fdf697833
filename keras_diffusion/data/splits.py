"""`load_splits`: a source's train and test images, holding some out where
the source has no test split of its own."""

import dataclasses

import numpy as np

from keras_diffusion.data.loader import load_images

# Without a test split, one image in this many is held out to test on.
HOLD_OUT = 10
# Seeds the fixed order of the splits held out of a source without its own.
SPLIT_SEED = 0


def load_splits(source=None, image_size=None, channels=None):
    """The train and test images of a source, as two `ImageData`.

    A source with splits (MNIST IDX files, an `.npz` with `x_train` and
    `x_test`, tensorflow-datasets) gives its own. A folder, or an `.npz` of
    one set, gives the same images for both splits; then every
    `HOLD_OUT`-th image (the 10th, 20th, ...) is the test split and the
    others the train split, so that nothing is tested on what it trained
    on, each split in a fixed random order (a folder is read class by
    class, and the FID compares the first N images of each split).
    The evaluator trains (`kd train evaluator`) and computes its reference
    features (`Evaluator.compute_reference`) on these splits.

    Args:
        source, image_size, channels: as for `load_images`.

    Returns:
        `(train, test)`, each an `ImageData`.

    Example:
    >>> train, test = load_splits("pets")  # a folder of 100 images
    >>> len(train.images), len(test.images)
    (90, 10)
    """
    train = load_images(source, "train", image_size, channels)
    test = load_images(source, "test", image_size, channels)
    return hold_out_test(train, test)


def hold_out_test(train, test):
    """`(train, test)` as `load_splits` makes them from what `load_images`
    read for each split: unchanged if they differ, else the test split
    held out of the train split."""
    if not _same(train, test):
        return train, test
    held_out = np.arange(len(train.images)) % HOLD_OUT == HOLD_OUT - 1
    # A folder is read class by class, so its first images are all of one
    # class; the FID compares the first N of each split, so both are put in
    # one fixed random order (a source with its own splits keeps its order).
    order = np.random.default_rng(SPLIT_SEED)
    train_indices = order.permutation(np.flatnonzero(~held_out))
    test_indices = order.permutation(np.flatnonzero(held_out))
    return _select(train, train_indices), _select(train, test_indices)


def _same(train, test):
    """Whether both splits hold the same images (a source without splits)."""
    return (train.images.shape == test.images.shape
            and np.array_equal(train.images, test.images)
            and (train.labels is None) == (test.labels is None)
            and (train.labels is None or np.array_equal(train.labels, test.labels)))


def _select(data, indices):
    labels = None if data.labels is None else data.labels[indices]
    return dataclasses.replace(data, images=data.images[indices], labels=labels)
