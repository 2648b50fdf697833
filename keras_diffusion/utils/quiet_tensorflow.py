"""Keeps TensorFlow's C++ start-up lines off stderr.

Importing TensorFlow prints, from C++ and before any Python logging exists,
lines such as `WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR` and `I0000 ... cudart_stub.cc:31] Could not
find cuda drivers`, which `TF_CPP_MIN_LOG_LEVEL` no longer silences.
`install()` wraps the one import of `tensorflow`: while it runs, the
process's stderr (file descriptor 2) goes to a temporary file, and
afterwards every line that is not such a start-up line is written back.
Unless the user has set `TF_CPP_MIN_LOG_LEVEL`, `install()` sets it to 3
(before JAX, which Keras imports, sets it to 1), which also keeps away the
`E0000 ... cuInit` line that a machine without a GPU prints at
TensorFlow's first operation. A value the user set is left as it is, and so
is Python's logging.

`import keras_diffusion` installs it unless TensorFlow is already imported
or `KD_TF_LOGS=1` is set (`kd --verbose` sets it).
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

SHOW_LOGS_VARIABLE = "KD_TF_LOGS"
# absl's notice, glog-style lines (`I0000 00:00:...`, `W1201 ...`,
# `E0000 ...`) and the continuation of TensorFlow's CPU-feature notice.
_START_UP_LINE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IWEF]\d{4} \d\d:\d\d:\d\d"
    rb"|To enable the following instructions:)"
)


@contextlib.contextmanager
def start_up_lines_filtered():
    """Drops TensorFlow's C++ start-up lines from stderr during the body."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture if not _START_UP_LINE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's `exec_module` with the start-up lines filtered."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps its own loader (importlib.resources asks it).
        module.__loader__ = module.__spec__.loader = self.loader
        try:
            with start_up_lines_filtered():
                self.loader.exec_module(module)
        finally:
            sys.meta_path[:] = [finder for finder in sys.meta_path
                                if not isinstance(finder, _QuietTensorFlowFinder)]


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do, and loads it with
    `_QuietLoader`. Stays in place until TensorFlow is imported: Keras and
    tensorflow-datasets ask `importlib.util.find_spec("tensorflow")`
    whether it is installed before they import it."""

    def __init__(self):
        self._finding = False

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or self._finding:
            return None
        self._finding = True  # the search below asks this finder again
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install():
    """Filters the start-up lines of the next `import tensorflow`, if any.

    Also sets `TF_CPP_MIN_LOG_LEVEL=3` unless it is set. Does nothing when
    TensorFlow is already imported, when `KD_TF_LOGS=1` is set, or when it
    is installed already.
    """
    if "tensorflow" in sys.modules or os.environ.get(SHOW_LOGS_VARIABLE) == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
