"""`load_images`: images from a folder, an `.npz`, MNIST IDX files or
tensorflow-datasets, checked and converted to uint8 `(N, H, W, C)`."""

import dataclasses
import os

import numpy as np

from keras_diffusion.data import image_folder
from keras_diffusion.data import idx
from keras_diffusion.data import npz
from keras_diffusion.data import tfds_source
from keras_diffusion.data.errors import DataError
from keras_diffusion.data.ranges import to_uint8

SOURCES = (
    "a folder of images (PNG, JPEG; one sub-folder per class for labels), "
    "a directory with the four MNIST IDX files, "
    f"{npz.NPZ_LAYOUTS}, or tfds:NAME[:SPLIT]")
_RESIZE_CHUNK = 1024
_LUMA = np.array([0.2989, 0.5870, 0.1140], "float32")  # tf.image's weights


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """Images as `load_images` returns them, with labels and provenance.

    Attributes:
        images: uint8 array `(N, H, W, C)`, C being 1 or 3.
        labels: int64 array `(N,)` of class indices, or `None`
            (unlabelled).
        class_names: list of str, the name of each class index (sub-folder
            names, tensorflow-datasets label names), or `None` where the
            source names none.
        source: str, where the images came from (the path given, or
            `tfds:NAME:SPLIT`).
        value_range: str, the dtype and value range of the data as read,
            before conversion to uint8, e.g. `"uint8 0-255"` or
            `"float32 [0, 1]"`.
    """

    images: np.ndarray
    labels: np.ndarray | None
    class_names: list | None
    source: str
    value_range: str

    @property
    def num_classes(self):
        """The number of classes: the named ones, else the largest label
        plus one; `None` for unlabelled images."""
        if self.labels is None:
            return None
        if self.class_names:
            return len(self.class_names)
        return int(self.labels.max()) + 1


def load_images(source=None, split="train", image_size=None, channels=None):
    """Loads images (and labels, if the source has them) into memory.

    Accepted sources:

    - `None`: MNIST through tensorflow-datasets (downloaded the first
      time; offline this fails at once with a `DataError` naming
      `--data`);
    - `"tfds:NAME"` or `"tfds:NAME:SPLIT"`: a tensorflow-datasets image
      dataset, e.g. `"tfds:fashion_mnist"`, `"tfds:cifar10:test"`; the
      SPLIT given there replaces `split`;
    - a folder of images (.png, .jpg, .jpeg, .bmp, .gif): each sub-folder,
      in sorted order, is a class 0..K-1 (as
      `keras.utils.image_dataset_from_directory` reads them); a folder
      without sub-folders is unlabelled;
    - a directory holding the MNIST IDX files (`train-images-idx3-ubyte`
      and the other three, `.gz` or not);
    - an `.npz` with `x_train, y_train, x_test, y_test` (the `y_` arrays
      optional), with `images` and optional `labels`, or with one array of
      images. Arrays are `(N, H, W)` or `(N, H, W, C)`, uint8 or any range
      `keras_diffusion.data.ranges.value_range` accepts: 0-255 integers or
      floats, [0, 1] floats, [-1, 1] floats.

    A folder, and an `.npz` without `x_train`/`x_test`, has no splits: any
    `split` gives all of it. Alpha channels are dropped.

    Args:
        source: one of the above (str or path-like), or `None`.
        split: str, `"train"` or `"test"` (any tensorflow-datasets split
            for `tfds:` sources).
        image_size: `None` to keep the size (then all images must have
            one), an int for square images, or `(height, width)`: every
            image is resized (bilinear, antialiased; stretched, not
            cropped) to it.
        channels: `None` to keep the channels (then all images must have
            the same count), 1 for grayscale or 3 for RGB.

    Returns:
        An `ImageData`: uint8 `images` `(N, H, W, C)`, int64 `labels` or
        `None`, `class_names`, `source` and `value_range`.

    Raises:
        DataError: the data cannot be used; the message names the file and
            says what was wrong: a missing path, an empty folder, an
            unreadable file, images of mixed sizes (without `image_size`)
            or channels (without `channels`), values out of range or of an
            ambiguous range, labels that do not match the images, or a
            tensorflow-datasets download that failed.
        ValueError: `image_size` or `channels` is not valid.

    Example:

    >>> data = load_images("pets", image_size=32, channels=3)
    >>> data.images.shape, data.class_names
    ((6, 32, 32, 3), ['cat', 'dog'])
    """
    size = _check_image_size(image_size)
    if channels not in (None, 1, 3):
        raise ValueError(f"`channels` must be None, 1 (grayscale) or 3 (RGB). "
                         f"Got {channels!r}")
    read = _read(source, split)
    if isinstance(read["images"], list):  # decoded files, uint8 (H, W, C)
        images = _stack(read["images"], read["names"], read["source"], size,
                        channels)
        value_range = "uint8 0-255"
    else:
        images = _as_nhwc(np.asarray(read["images"]), read["images_origin"])
        images, value_range = to_uint8(images, read["images_origin"])
        images = _convert_channels(images, channels)
        if size is not None:
            images = _resize(images, size)
    labels = read["labels"]
    if labels is not None:
        labels = _check_labels(labels, len(images), read["labels_origin"])
    return ImageData(images, labels, read["class_names"], read["source"],
                     value_range)


def describe_data(data):
    """One line that says what data is used: count, shape, range, classes.

    Args:
        data: an `ImageData`, as `load_images` returns.

    Returns:
        str without line breaks, e.g. `"60000 images 28x28x1 (uint8 0-255)
        from data/mnist, 10 classes"`.

    Example:

    >>> print(describe_data(load_images("pets")))
    6 images 32x32x3 (uint8 0-255) from pets, 2 classes (cat, dog)
    """
    count, height, width, channels = data.images.shape
    text = (f"{count} image{'' if count == 1 else 's'} "
            f"{height}x{width}x{channels} ({data.value_range}) "
            f"from {data.source}")
    if data.labels is None:
        text += ", unlabelled"
    else:
        names, classes = data.class_names, data.num_classes
        text += f", {classes} class{'' if classes == 1 else 'es'}"
        if names and list(names) != [str(i) for i in range(classes)]:
            text += f" ({', '.join(names[:5])}{', ...' if classes > 5 else ''})"
    return " ".join(text.splitlines())


def _read(source, split):
    """The raw arrays of a source, with names for the error messages."""
    if source is None or (isinstance(source, str)
                          and source.startswith("tfds:")):
        name, _, given_split = ("mnist" if source is None
                                else source[len("tfds:"):]).partition(":")
        if not name:
            raise DataError(f"{source!r} names no dataset; write tfds:NAME or "
                            "tfds:NAME:SPLIT, e.g. tfds:fashion_mnist.")
        split = given_split or split
        label = f"tfds:{name}:{split}"
        images, labels, class_names = tfds_source.read_tfds(name, split)
        names = None
        if isinstance(images, list):  # images of different sizes
            names = [f"{label} example {i}" for i in range(len(images))]
        return dict(images=images, labels=labels, class_names=class_names,
                    source=label, images_origin=f"images of {label}",
                    labels_origin=f"labels of {label}", names=names)
    try:
        path = os.fspath(source)
    except TypeError:
        raise ValueError(f"`source` must be None, a path or 'tfds:NAME'. "
                         f"Got {source!r}") from None
    if not os.path.exists(path):
        raise DataError(f"Data path {path!r} does not exist. Pass {SOURCES}.")
    read = dict(source=path, class_names=None, names=None)
    if os.path.isdir(path) and idx.has_idx_files(path):
        images, labels, image_file, label_file = idx.read_idx_dir(path, split)
        read.update(images=images, labels=labels,
                    images_origin=f"images in {image_file!r}",
                    labels_origin=f"labels in {label_file!r}")
    elif os.path.isdir(path):
        paths, labels, class_names = image_folder.index_image_folder(path)
        images = [image_folder.read_image(name) for name in paths]
        read.update(images=images, labels=labels, class_names=class_names,
                    names=paths, labels_origin=f"labels of {path!r}")
    else:
        images, labels, image_key, label_key = npz.read_npz(path, split)
        read.update(images=images, labels=labels,
                    images_origin=f"{image_key} in {path!r}",
                    labels_origin=f"{label_key} in {path!r}")
    return read


def _check_image_size(image_size):
    if image_size is None:
        return None
    size = (image_size, image_size) if np.ndim(image_size) == 0 else image_size
    try:
        valid = len(size) == 2 and all(int(s) == s and s >= 1 for s in size)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError("`image_size` must be None, a positive int or "
                         f"(height, width). Got {image_size!r}")
    return int(size[0]), int(size[1])


def _as_nhwc(images, origin):
    """`(N, H, W)` or `(N, H, W, C)` -> `(N, H, W, C)`, C 1 or 3."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim == 4 and images.shape[-1] in (2, 4):
        images = images[..., :-1]  # alpha
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        hint = ""
        if images.ndim == 4 and images.shape[1] in (1, 3):
            hint = (" Channels first? Move them last with "
                    "np.transpose(x, (0, 2, 3, 1)).")
        raise DataError(
            f"{origin} have shape {images.shape}; expected (N, H, W) or "
            "(N, H, W, C) with C = 1 (grayscale) or 3 (RGB)." + hint)
    if images.size == 0:
        raise DataError(f"{origin} hold no images (shape {images.shape}).")
    return images


def _stack(images, names, origin, size, channels):
    """Decoded images of one size (or resized to `size`) -> one array."""
    counts = [image.shape[-1] for image in images]
    if channels is None and len(set(counts)) > 1:
        other = next(i for i, count in enumerate(counts) if count != counts[0])
        raise DataError(
            f"Images in {origin!r} have different channel counts: "
            f"{names[0]!r} has {counts[0]}, {names[other]!r} has "
            f"{counts[other]}. Pass channels=1 (grayscale) or channels=3 "
            "(RGB) to convert them all.")
    sizes = [image.shape[:2] for image in images]
    if size is None and len(set(sizes)) > 1:
        other = next(i for i, shape in enumerate(sizes) if shape != sizes[0])
        raise DataError(
            f"Images in {origin!r} have different sizes: {names[0]!r} is "
            f"{sizes[0][0]}x{sizes[0][1]}, {names[other]!r} is "
            f"{sizes[other][0]}x{sizes[other][1]}. Pass an image size "
            "(image_size=) to resize them all, or make them one size.")
    height, width = size or sizes[0]
    result = np.empty((len(images), height, width, channels or counts[0]),
                      "uint8")
    groups = {}
    for index, key in enumerate(zip(sizes, counts)):
        groups.setdefault(key, []).append(index)
    for indices in groups.values():
        batch = _convert_channels(np.stack([images[i] for i in indices]),
                                  channels)
        result[indices] = batch if size is None else _resize(batch, size)
    return result


def _convert_channels(images, channels):
    """uint8 `(N, H, W, C)` -> `channels` channels (1: luma, 3: repeated)."""
    if channels is None or images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    gray = np.rint(images.astype("float32") @ _LUMA)[..., None]
    return np.clip(gray, 0, 255).astype("uint8")


def _resize(images, size):
    """uint8 `(N, H, W, C)` -> uint8 `(N, *size, C)`, bilinear, antialiased."""
    if images.shape[1:3] == tuple(size):
        return images
    import tensorflow as tf

    result = np.empty((len(images),) + tuple(size) + images.shape[3:], "uint8")
    for start in range(0, len(images), _RESIZE_CHUNK):
        chunk = tf.image.resize(images[start:start + _RESIZE_CHUNK], size,
                                method="bilinear", antialias=True).numpy()
        result[start:start + len(chunk)] = np.clip(np.rint(chunk), 0, 255)
    return result


def _check_labels(labels, count, origin):
    """Labels -> int64 `(count,)`, whole numbers >= 0."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]  # (N, 1), as keras.datasets gives
    if labels.shape != (count,):
        number = labels.shape[0] if labels.ndim else "a scalar, no"
        raise DataError(
            f"{origin}: {number} labels (shape {labels.shape}) for {count} "
            f"images; give one label per image, shape ({count},).")
    if labels.dtype.kind not in "uif":
        raise DataError(f"{origin} must be whole numbers >= 0 (class "
                        f"indices); got dtype {labels.dtype}.")
    if not (np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
            and labels.min() >= 0):
        raise DataError(
            f"{origin} must be whole numbers >= 0 (class indices); got dtype "
            f"{labels.dtype} with values from {labels.min()} to "
            f"{labels.max()}.")
    return labels.astype("int64")
