"""`train_evaluator()`: the library function behind `kd train evaluator`."""

import json
import os
import time

import keras
import numpy as np

from keras_diffusion.data import load_mnist
from keras_diffusion.data import make_dataset
from keras_diffusion.data import to_model_range
from keras_diffusion.networks import MNISTClassifier
from keras_diffusion.presets import save_to_preset
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import check_writable_dir

EPOCHS = 15
BATCH_SIZE = 128
LEARNING_RATE = 2e-3
MAX_SHIFT = 2  # pixels
MAX_ROTATION = 10  # degrees


def train_evaluator(data=None, epochs=EPOCHS, batch_size=BATCH_SIZE, out_dir=None,
                    seed=0, learning_rate=LEARNING_RATE, verbose=1):
    """Trains the `MNISTClassifier` that scores samples, and saves it.

    Trains on the MNIST train split with light augmentation (random shifts of
    up to `MAX_SHIFT` pixels and rotations of up to `MAX_ROTATION` degrees),
    softmax cross-entropy and Adam with a cosine-decayed learning rate, then
    measures the accuracy on the whole test split, which training never sees.
    Writes to `out_dir`: `evaluator.keras` (the model, without optimizer),
    `log.csv` (loss and accuracy per epoch) and `evaluator.json` (the test
    accuracy, the settings and the training time).

    Args:
        data: `None` (tensorflow-datasets) or a path to an MNIST IDX
            directory or `.npz`.
        epochs: int, passes over the training images.
        batch_size: int.
        out_dir: str, output directory (default `runs/evaluator/`).
        seed: int, seeds initialization, shuffling and augmentation.
        learning_rate: float, Adam's initial learning rate.
        verbose: Keras verbosity (1: progress bar); also prints the test
            accuracy and the training time when nonzero.

    Returns:
        The path of the saved `.keras` model.
    """
    epochs = EPOCHS if epochs is None else int(epochs)
    batch_size = BATCH_SIZE if batch_size is None else int(batch_size)
    learning_rate = LEARNING_RATE if learning_rate is None else float(learning_rate)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1. Got {value}")
    if learning_rate <= 0:
        raise ValueError(f"`learning_rate` must be > 0. Got {learning_rate}")
    train_images, train_labels = load_mnist(data, "train")
    test_images, test_labels = load_mnist(data, "test")
    out_dir = check_writable_dir(out_dir or os.path.join("runs", "evaluator"))
    steps_per_epoch = len(train_images) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the data "
            f"({len(train_images)} images); pass a smaller batch size."
        )

    keras.utils.set_random_seed(seed)
    classifier = MNISTClassifier(name="evaluator")
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
    ).map(_augmenter(seed))

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

    path = os.path.join(out_dir, "evaluator.keras")
    with atomic_path(path) as tmp:
        classifier.save(tmp)
    save_to_preset(classifier, os.path.join(out_dir, "preset"))  # to share
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


def _augmenter(seed):
    """A `tf.data` map function: random shifts and small rotations.

    Keras preprocessing layers run inside `tf.data` under every backend. The
    background of images in [-1, 1] is -1, so that is the fill value.
    """
    shift = MAX_SHIFT / 28
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
