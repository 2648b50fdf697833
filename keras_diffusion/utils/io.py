"""File helpers: atomic writes and writable-directory checks."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it to `path` on success.

    The temporary name keeps the extension (Keras, NumPy and matplotlib pick
    the format from it). If the body raises, the temporary file is removed
    and `path` is untouched, so a crash never leaves a truncated file where a
    good one was.

    Example:
    >>> with atomic_path("grid.png") as tmp:
    ...     save_png(tmp)
    """
    fd, tmp = _mkstemp_beside(path)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; use the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a new empty directory beside `path`; it becomes `path` on success.

    For outputs made of several files (a preset, an export): the body fills
    the temporary directory, which then replaces `path` (an existing
    directory there is moved aside first and removed after). If the body
    raises, the temporary directory is removed and `path` is untouched, so
    a crash never leaves a partial directory where a good one was.

    Example:
    >>> with atomic_directory("runs/cfg/preset") as tmp:
    ...     write_files(tmp)
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.")
    umask = os.umask(0)
    os.umask(umask)
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700: the usual mode
        if os.path.isdir(path):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{name}.old.")
            os.replace(path, os.path.join(old, name))
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None:  # put the old directory back
                os.replace(os.path.join(old, name), path)
            raise
    finally:
        for leftover in (tmp, old):
            if leftover is not None and os.path.exists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)


def check_writable_dir(directory, create=True):
    """Raises `ValueError` unless `directory` exists (or can be made) and is writable."""
    directory = os.path.abspath(os.fspath(directory) or ".")
    if create:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"Cannot create output directory {directory!r}: "
                f"{error.strerror}; choose another."
            ) from None
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise ValueError(
                f"Output directory {directory!r} is a file, not a directory; "
                "choose another."
            )
        raise ValueError(
            f"Output directory {directory!r} does not exist; create it or "
            "choose another."
        )
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError:
        raise ValueError(
            f"Output directory {directory!r} is not writable; choose another."
        ) from None
    return directory


def check_writable_file(path):
    """Raises `ValueError` unless `atomic_path(path)` can write `path`.

    Checks, before any long computation, that `path` is not a directory, its
    directory exists and is writable, and a temporary file named as
    `atomic_path` names it can be created there (so a file name that is too
    long fails now, not after the work). Creates nothing that stays.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(
            f"Output {path!r} is a directory; give a file name inside it."
        )
    check_writable_dir(os.path.dirname(os.path.abspath(path)), create=False)
    try:
        fd, tmp = _mkstemp_beside(path)
    except OSError as error:
        raise ValueError(
            f"Cannot write {path!r}: {error.strerror or error}; choose another "
            "file name."
        ) from None
    os.close(fd)
    os.remove(tmp)
    return path


def read_npz(path, what="arrays"):
    """Every array of the `.npz` file `path`, as a dict.

    Raises `ValueError`, naming `what` the file should hold, if it cannot
    be read as an `.npz` (pickled objects are refused).
    """
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as error:
        raise ValueError(
            f"Could not read {what} from {path!r}: it is not a readable .npz "
            f"file ({type(error).__name__})."
        ) from None


def _mkstemp_beside(path):
    """`tempfile.mkstemp` in `path`'s directory, named `.<stem>.XXXX<ext>`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    stem, extension = os.path.splitext(os.path.basename(path))
    return tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=extension)
