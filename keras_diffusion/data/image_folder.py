"""A folder of image files (PNG, JPEG, BMP, GIF), with labels from its
sub-folders as `keras.utils.image_dataset_from_directory` reads them."""

import os
import re

from keras_diffusion.data.errors import DataError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def index_image_folder(directory):
    """Lists the image files of a folder, with labels from its sub-folders.

    As `keras.utils.image_dataset_from_directory(labels="inferred")`: each
    sub-folder (sorted by name; hidden ones skipped) is a class, numbered
    0..K-1, and holds that class's images, also in nested folders. A folder
    without sub-folders is unlabelled. Files whose names do not end in
    .png, .jpg, .jpeg, .bmp or .gif are skipped.

    Args:
        directory: str, the folder.

    Returns:
        `(paths, labels, class_names)`: sorted file paths; a list of class
        indices, one per path, or `None` (unlabelled); the class names
        (sub-folder names) or `None`.

    Raises:
        DataError: the folder holds no image, or holds images both at its
            top level and in sub-folders.

    Example:

    >>> paths, labels, class_names = index_image_folder("pets")
    >>> class_names
    ['cat', 'dog']
    """
    entries = sorted(os.listdir(directory))
    class_names = [name for name in entries if not name.startswith(".")
                   and os.path.isdir(os.path.join(directory, name))]
    top = [os.path.join(directory, name) for name in entries
           if _is_image(os.path.join(directory, name))]
    if not class_names:
        paths, labels, class_names = top, None, None
    else:
        if top:
            raise DataError(
                f"{directory!r} holds images at its top level "
                f"({os.path.basename(top[0])!r}) and sub-folders "
                f"({class_names[0]!r}): put every image in a class sub-folder "
                "(labelled) or none (unlabelled).")
        paths, labels = [], []
        for index, name in enumerate(class_names):
            found = _walk(os.path.join(directory, name))
            paths += found
            labels += [index] * len(found)
    if not paths:
        raise DataError(
            f"{directory!r} has no images (.png, .jpg, .jpeg, .bmp, .gif) "
            "and has no train-images-idx3-ubyte(.gz). Pass a folder of "
            "images, in one sub-folder per class for labels, or an MNIST "
            "directory. An MNIST directory holds train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
            "t10k-labels-idx1-ubyte.gz.")
    return paths, labels, class_names


def read_image(path):
    """Decodes one image file into a uint8 array `(H, W, C)`.

    Alpha channels are dropped, so C is 1 (grayscale) or 3 (RGB); a GIF
    gives its first frame. Decodes with TensorFlow (`tf.io.decode_image`),
    imported here.

    Args:
        path: str, a PNG, JPEG, BMP or GIF file.

    Returns:
        uint8 array `(H, W, 1)` or `(H, W, 3)`.

    Raises:
        DataError: the file cannot be read or decoded; the message names it.

    Example:

    >>> read_image("pets/cat/0.png").shape
    (32, 32, 3)
    """
    import tensorflow as tf

    try:
        with open(path, "rb") as f:
            contents = f.read()
        image = tf.io.decode_image(contents, channels=0, dtype=tf.uint8,
                                   expand_animations=False).numpy()
    except (OSError, tf.errors.OpError) as error:
        # TensorFlow's messages start with "{{function_node ...}}" and end
        # with "[Op:DecodeImage]".
        message = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", str(error)).strip()
        raise DataError(
            f"Could not read image {path!r} ({type(error).__name__}: "
            f"{message.splitlines()[0] if message else 'unreadable'}); it is "
            "corrupt or not an image. Remove or replace it.") from None
    if image.shape[-1] in (2, 4):  # gray + alpha, RGB + alpha
        image = image[..., :-1]
    return image


def _is_image(path):
    return path.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(path)


def _walk(directory):
    paths = []
    for root, _, files in sorted(os.walk(directory), key=lambda item: item[0]):
        paths += [os.path.join(root, name) for name in sorted(files)
                  if name.lower().endswith(IMAGE_EXTENSIONS)]
    return paths
