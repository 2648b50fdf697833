"""`train_evaluator()`: the library function behind `kd train evaluator`."""

import importlib.util
import json
import os
import time

import keras
import numpy as np

from keras_diffusion.app.recipes import RECIPES
from keras_diffusion.data import DataError
from keras_diffusion.data import load_splits
from keras_diffusion.data import make_dataset
from keras_diffusion.data import to_model_range
from keras_diffusion.metrics import Evaluator
from keras_diffusion.metrics import reference_path
from keras_diffusion.networks import MNISTClassifier
from keras_diffusion.presets import save_to_preset
from keras_diffusion.utils.checks import check_int
from keras_diffusion.utils.checks import check_positive
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_dir

# The defaults live in the recipe `evaluator`.
EPOCHS = RECIPES["evaluator"].epochs
BATCH_SIZE = RECIPES["evaluator"].batch_size
LEARNING_RATE = RECIPES["evaluator"].learning_rate
MAX_SHIFT = 2  # pixels
MAX_ROTATION = 10  # degrees


def train_evaluator(data=None, epochs=EPOCHS, batch_size=BATCH_SIZE, out_dir=None,
                    seed=0, learning_rate=LEARNING_RATE, verbose=1,
                    image_size=None, channels=None):
    """Trains the `MNISTClassifier` that scores samples, and saves it.

    Trains on the train split (MNIST by default) with light augmentation (random shifts of
    up to `MAX_SHIFT` pixels and rotations of up to `MAX_ROTATION` degrees),
    softmax cross-entropy and Adam with a cosine-decayed learning rate, then
    measures the accuracy on the whole test split, which training never sees.
    Writes to `out_dir`: `evaluator.keras` (the model, without optimizer),
    `evaluator.reference.npz` (the features of the first
    `metrics.evaluator.REFERENCE_IMAGES` train and test images, the
    reference `kd evaluate` compares with), `preset/` (both, as a preset
    directory to share), `log.csv` (loss and accuracy per epoch) and
    `evaluator.json` (the test accuracy, the settings and the training
    time).

    Args:
        data: labelled images, as `keras_diffusion.data.load_images` reads
            them (`None`: MNIST through tensorflow-datasets); the network
            is built for their size, channels and classes. Without a test
            split, one image in ten is held out (`load_splits`).
        epochs: int, passes over the training images.
        batch_size: int.
        out_dir: str, output directory (default `runs/evaluator/`).
        seed: int, seeds initialization, shuffling and augmentation.
        learning_rate: float, Adam's initial learning rate.
        verbose: Keras verbosity (1: progress bar); also prints the test
            accuracy and the training time when nonzero.
        image_size, channels: resize and convert, as for `train`.

    Returns:
        The path of the saved `.keras` model.
    """
    epochs = check_int("epochs", EPOCHS if epochs is None else epochs)
    batch_size = check_int("batch_size",
                           BATCH_SIZE if batch_size is None else batch_size)
    learning_rate = check_positive(
        "learning_rate", LEARNING_RATE if learning_rate is None else learning_rate)
    if importlib.util.find_spec("tensorflow") is None:
        raise ValueError(
            "Training the evaluator needs TensorFlow: its augmentation (random "
            "shifts and rotations) runs in a tf.data pipeline. Install it "
            "(`pip install tensorflow`), or train the evaluator where it is.")
    (train_images, train_labels), (test_images, test_labels), num_classes = (
        _labelled_splits(data, image_size, channels))
    out_dir = check_writable_dir(out_dir or os.path.join("runs", "evaluator"))
    steps_per_epoch = len(train_images) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the data "
            f"({len(train_images)} images); pass a smaller batch size."
        )

    keras.utils.set_random_seed(seed)
    classifier = MNISTClassifier(image_shape=train_images.shape[1:],
                                 num_classes=num_classes, name="evaluator")
    images = keras.Input(classifier.image_shape, name="images")
    trainer = keras.Model(images, classifier(images)["logits"])
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=epochs * steps_per_epoch, alpha=0.01
    )
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    dataset = make_dataset(
        to_model_range(train_images), train_labels, batch_size=batch_size, seed=seed
    ).map(_augmenter(seed, train_images.shape[1]))

    start = time.perf_counter()
    trainer.fit(
        dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
        callbacks=[keras.callbacks.CSVLogger(os.path.join(out_dir, "log.csv"))],
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    logits = classifier.predict(to_model_range(test_images), batch_size=500,
                                verbose=0)["logits"]
    test_accuracy = float(np.mean(np.argmax(logits, axis=-1) == test_labels))

    # The real images' features that `kd evaluate` compares with, saved
    # beside the model and in the preset, so that scoring needs no data.
    evaluator = Evaluator(classifier)
    evaluator.reference_from_images(train_images, test_images,
                                    "tfds:mnist" if data is None else data)
    path = os.path.join(out_dir, "evaluator.keras")
    with atomic_path(path) as tmp:
        classifier.save(tmp)
    evaluator.save_reference(reference_path(path))
    preset = save_to_preset(classifier, os.path.join(out_dir, "preset"))  # to share
    evaluator.save_reference(reference_path(preset))
    record = {
        "test_accuracy": test_accuracy,
        "test_images": len(test_images),
        "train_images": len(train_images),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "backend": keras.backend.backend(),
    }
    with atomic_path(os.path.join(out_dir, "evaluator.json")) as tmp:
        with open(tmp, "w") as f:
            json.dump(record, f, indent=2)
    if verbose:
        print(f"Test accuracy: {test_accuracy:.4f} on {len(test_images)} held-out "
              f"test images ({epochs} epochs, {seconds:.0f} s of training).")
    return path


def _labelled_splits(data, image_size=None, channels=None):
    """`(train images, labels), (test images, labels), num_classes`, from
    `load_splits` (which holds out a test split where the source has none)."""
    train, test = load_splits(data, image_size, channels)
    for loaded in (train, test):
        if loaded.labels is None:
            raise DataError(
                f"The evaluator learns the classes of the images, and those "
                f"from {loaded.source!r} have no labels: put each class in its "
                "own sub-folder (or give labels in the .npz)."
            )
    num_classes = max(train.num_classes, test.num_classes)
    if num_classes < 2:
        raise DataError(f"The images from {train.source!r} have one class "
                        "only; the evaluator needs two or more.")
    return ((train.images, train.labels), (test.images, test.labels),
            num_classes)


def _augmenter(seed, image_height=28):
    """A `tf.data` map function: random shifts and small rotations.

    Keras preprocessing layers run inside `tf.data` under every backend. The
    background of images in [-1, 1] is -1, so that is the fill value.
    """
    shift = MAX_SHIFT / image_height
    layers = [
        keras.layers.RandomTranslation(shift, shift, fill_mode="constant",
                                       fill_value=-1.0, seed=seed),
        keras.layers.RandomRotation(MAX_ROTATION / 360, fill_mode="constant",
                                    fill_value=-1.0, seed=seed + 1),
    ]

    def augment(images, labels):
        for layer in layers:
            images = layer(images, training=True)
        return images, labels

    return augment
