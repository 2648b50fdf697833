"""JAX's persistent compilation cache, on by default for `kd`.

Under JAX every program (a sampling step, a training step, and each weight
initializer of a new model) is compiled by XLA the first time it runs in a
process. With the cache, a later process reads the compiled program from
disk instead: a second `kd sample` or `kd train` starts in a fraction of
the time (docs/performance.md#start-up).

JAX itself makes the cache key: a hash of the program, the JAX and XLA
versions, the XLA flags (such as `kd`'s one CPU device per core) and the
devices. A changed model, input shape or flag is a different key, so an
entry is never reused for another program.

The directory is `JAX_COMPILATION_CACHE_DIR` when set (JAX's own variable),
else `$XDG_CACHE_HOME/keras_diffusion/jax` (by default
`~/.cache/keras_diffusion/jax`). `KD_JAX_CACHE=off` turns it off.
Delete the directory to clear it.

In your own script, call `enable_compilation_cache()` before the first
JAX computation.
"""

import os

DISABLE_ENV = "KD_JAX_CACHE"
JAX_DIR_ENV = "JAX_COMPILATION_CACHE_DIR"
OFF_VALUES = ("0", "off", "false", "no")


def default_cache_dir():
    """The cache directory used when `JAX_COMPILATION_CACHE_DIR` is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras_diffusion", "jax")


def enable_compilation_cache(directory=None):
    """Turns on JAX's persistent compilation cache (JAX backend only).

    Every compiled program is cached, however quick its compilation (JAX
    by default keeps only those over a second; this package's many small
    programs, initializers included, add up to most of a cold start).

    Args:
        directory: where to keep the compiled programs; default
            `JAX_COMPILATION_CACHE_DIR` or `default_cache_dir()`.

    Returns:
        The directory, or `None` when the cache stays off: another backend,
        `KD_JAX_CACHE=off`, or a directory that cannot be created.
    """
    import keras

    if keras.backend.backend() != "jax":
        return None
    if os.environ.get(DISABLE_ENV, "").strip().lower() in OFF_VALUES:
        return None
    directory = directory or os.environ.get(JAX_DIR_ENV) or default_cache_dir()
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None  # read-only home, say: run without the cache
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
