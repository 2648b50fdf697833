"""Images from tensorflow-datasets (`tfds:NAME[:SPLIT]`), failing fast offline.

A dataset that is not prepared yet has to be downloaded. Before it starts
the download, `read_tfds` checks that the network answers: it opens a TCP
connection to `KD_NETWORK_PROBE` (`HOST:PORT`; by default the HTTPS proxy
when one is set, else storage.googleapis.com:443, where tensorflow-datasets
downloads MNIST from) and waits at most `PROBE_TIMEOUT` seconds. Offline it
raises a `DataError` at once, instead of tensorflow-datasets' minutes of
retries; set `KD_NETWORK_PROBE=` (empty) to skip the check. When the
download fails anyway, the folders it created under the tensorflow-datasets
data directory (`TFDS_DATA_DIR`, by default ~/tensorflow_datasets) are
removed; folders that were there before are left alone.
"""

import os
import shutil
import socket
import threading
import urllib.parse
import urllib.request

from keras_diffusion.data.errors import DataError

PROBE_ENV = "KD_NETWORK_PROBE"
DEFAULT_PROBE = "storage.googleapis.com:443"
PROBE_TIMEOUT = 5.0
OFFLINE_HINT = (
    "Offline, pass --data PATH (in Python, the path) instead: a folder of "
    "images, a directory with the four MNIST IDX files, or an .npz with "
    "x_train, y_train, x_test, y_test (or images and labels).")
_SCANNED_DEPTH = 3  # data_dir/downloads/extracted/<archive>
_BATCH = 4096


def read_tfds(name, split="train"):
    """Loads one split of a tensorflow-datasets image dataset into memory.

    Downloads and prepares the dataset first if needed (checking the
    network first, see the module docstring).

    Args:
        name: str, a tensorflow-datasets name such as `"mnist"`,
            `"fashion_mnist"` or `"cifar10"`.
        split: str, a tensorflow-datasets split such as `"train"`, `"test"`
            or `"train[:10%]"`.

    Returns:
        `(images, labels, class_names)`: a uint8 array `(N, H, W, C)` (or a
        list of `(H, W, C)` arrays when the dataset's images differ in
        size); int labels `(N,)` or `None` when the dataset has no class
        label; the class names or `None`.

    Raises:
        DataError: tensorflow-datasets is missing, does not know the name or
            split, the network does not answer, the download failed (the
            message names `--data`), or the dataset has no images.

    Example:

    >>> images, labels, class_names = read_tfds("fashion_mnist", "test")
    """
    import numpy as np

    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(
            f"tensorflow-datasets cannot be imported ({type(error).__name__}: "
            f"{error}); install it (pip install tensorflow-datasets). "
            f"{OFFLINE_HINT}") from None
    try:
        builder = tfds.builder(name, data_dir=os.environ.get("TFDS_DATA_DIR"))
    except Exception as error:  # DatasetNotFoundError and import failures
        raise DataError(
            f"tensorflow-datasets cannot load {name!r} "
            f"({type(error).__name__}: {_first_line(error)}). See "
            "tfds.list_builders() for the names it knows.") from None
    # (is_prepared warns about a folder that does not exist.)
    if not (os.path.isdir(builder.data_dir) and builder.is_prepared()):
        _download(builder, name)
    keys = builder.info.supervised_keys
    features = builder.info.features
    image_key = keys[0] if keys and isinstance(keys[0], str) else "image"
    if not isinstance(_feature(features, image_key), tfds.features.Image):
        raise DataError(f"tensorflow-datasets {name!r} has no image feature "
                        f"{image_key!r}; its features are {list(features)}.")
    label_key = keys[1] if keys and isinstance(keys[1], str) else "label"
    if not isinstance(_feature(features, label_key), tfds.features.ClassLabel):
        label_key = None
    try:
        dataset = builder.as_dataset(split=split)
        if None not in features[image_key].shape:
            dataset = dataset.batch(_BATCH)
        batches = list(tfds.as_numpy(dataset))
    except Exception as error:
        raise DataError(
            f"Could not read split {split!r} of tensorflow-datasets {name!r} "
            f"({type(error).__name__}: {_first_line(error)}); its splits are "
            f"{sorted(builder.info.splits)}.") from None
    if not batches:
        raise DataError(f"Split {split!r} of tensorflow-datasets {name!r} "
                        "is empty.")
    if None not in features[image_key].shape:
        images = np.concatenate([batch[image_key] for batch in batches])
    else:
        images = [example[image_key] for example in batches]
    labels, class_names = None, None
    if label_key is not None:
        labels = np.concatenate([np.reshape(item[label_key], -1)
                                 for item in batches])
        class_names = list(features[label_key].names)
    return images, labels, class_names


def check_network(what):
    """Raises a `DataError` unless the network answers (see the module
    docstring for what is probed).

    Args:
        what: str, what would be downloaded, for the message.

    Raises:
        DataError: no TCP connection to the probe within `PROBE_TIMEOUT`
            seconds; the message says so and names `--data`.
        ValueError: `KD_NETWORK_PROBE` is not `HOST:PORT`.

    Example:

    >>> check_network("'mnist'")  # offline: DataError
    """
    target = _probe_target()
    if target is None:
        return
    host, port = target
    error = _connect(host, port, PROBE_TIMEOUT)
    if error is not None:
        raise DataError(
            f"Could not download {what} through tensorflow-datasets: no "
            f"network ({host}:{port} did not answer: {error}). {OFFLINE_HINT}")


def _download(builder, name):
    """`builder.download_and_prepare()`, after `check_network`; on failure
    removes the folders it created and raises a `DataError`."""
    check_network(repr(name))
    root = _data_root(builder)
    before = _directories(root)
    try:
        builder.download_and_prepare()
    except BaseException as error:
        _remove_new_directories(root, before)
        if not isinstance(error, Exception):
            raise  # KeyboardInterrupt: cleaned up, and stopped
        raise DataError(
            f"Could not download {name!r} through tensorflow-datasets "
            f"({type(error).__name__}: {_first_line(error)}). "
            f"{OFFLINE_HINT}") from None


def _probe_target():
    """`(host, port)` to probe, or `None` to skip the check."""
    setting = os.environ.get(PROBE_ENV)
    if setting is None:
        proxy = urllib.request.getproxies().get("https")
        if proxy:
            parsed = urllib.parse.urlsplit(proxy if "//" in proxy
                                           else "//" + proxy)
            if parsed.hostname:
                return parsed.hostname, parsed.port or 80
        setting = DEFAULT_PROBE
    setting = setting.strip()
    if not setting:
        return None
    host, _, port = setting.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{PROBE_ENV} must be HOST:PORT (or empty to skip "
                         f"the network check). Got {setting!r}")
    return host.strip("[]"), int(port)


def _connect(host, port, timeout):
    """`None` if a TCP connection opens within `timeout` seconds, else why
    not. In a thread, so that a slow name lookup cannot outlast it."""
    outcome = ["timed out"]

    def attempt():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome[0] = None
        except OSError as error:
            outcome[0] = str(error) or type(error).__name__

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return f"no answer within {timeout:g} s" if thread.is_alive() else outcome[0]


def _data_root(builder):
    """The data directory a builder writes to (its data_dir is
    `ROOT/NAME[/CONFIG]/VERSION`)."""
    dataset_dir = os.path.normpath(os.fspath(builder.data_dir))
    for _ in range(3 if builder.builder_config else 2):
        dataset_dir = os.path.dirname(dataset_dir)
    return dataset_dir


def _directories(root, depth=_SCANNED_DEPTH):
    """The directories `root` and those under it, `depth` levels down."""
    if not os.path.isdir(root):
        return set()
    found = {root}
    if depth:
        try:
            entries = list(os.scandir(root))
        except OSError:
            return found
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                found |= _directories(entry.path, depth - 1)
    return found


def _remove_new_directories(root, before):
    """Removes the directories under `root` (and `root`) not in `before`."""
    for path in sorted(_directories(root) - before):
        if os.path.isdir(path):  # not inside one already removed
            shutil.rmtree(path, ignore_errors=True)


def _feature(features, key):
    return features[key] if key in features.keys() else None


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
