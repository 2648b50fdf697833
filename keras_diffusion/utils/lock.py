"""One process at a time in a directory: an OS file lock."""

import contextlib
import os

try:
    import fcntl
except ImportError:  # Windows: no `fcntl`; the directory is not locked.
    fcntl = None

LOCK_FILE = ".kd.lock"


class DirectoryInUseError(ValueError):
    """Another process holds the directory's lock."""


@contextlib.contextmanager
def lock_directory(directory, purpose="training"):
    """Holds an exclusive lock on `directory` for the body of the `with`.

    The lock is an OS file lock (`fcntl.flock`) on `directory/.kd.lock`,
    which holds the owner's process id and is removed when the body ends.
    The OS releases the lock when the process ends, however it ends (a
    crash, Ctrl-C, SIGKILL), so a stale file never blocks a rerun. Not
    enforced where `fcntl` is missing (Windows).

    Args:
        directory: an existing directory.
        purpose: what the lock is for, named in the error.

    Raises:
        DirectoryInUseError: another process holds the lock; the message
            names the directory and that process.

    Example:
    >>> with lock_directory("runs/ddpm"):
    ...     train_into("runs/ddpm")
    """
    if fcntl is None:
        yield
        return
    path = os.path.join(directory, LOCK_FILE)
    lock = _acquire(path, directory, purpose)
    try:
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield
    finally:
        # Removed while still held, so no other process can hold a lock on
        # this file once it is gone (see `_acquire`).
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _acquire(path, directory, purpose):
    """The open lock file at `path`, locked by this process."""
    while True:
        lock = open(path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise DirectoryInUseError(
                f"{directory!r} is in use: process {holder} is {purpose} "
                "there. Wait for it to finish (or stop it), or choose another "
                "output directory (`out_dir`)."
            ) from None
        try:
            same_file = os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return lock
        # The holder removed the file between our open and our lock: the
        # lock we got is on a file no one else can find. Try again.
        lock.close()
