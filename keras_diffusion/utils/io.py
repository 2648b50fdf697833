"""File helpers: atomic writes and writable-directory checks."""

import contextlib
import os
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
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    stem, extension = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=extension)
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


def check_writable_dir(directory, create=True):
    """Raises `ValueError` unless `directory` exists (or can be made) and is writable."""
    directory = os.path.abspath(os.fspath(directory) or ".")
    if create:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"Cannot create output directory {directory!r}: {error.strerror}."
            ) from None
    if not os.path.isdir(directory):
        raise ValueError(f"Output directory {directory!r} does not exist.")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError:
        raise ValueError(
            f"Output directory {directory!r} is not writable; choose another."
        ) from None
    return directory
