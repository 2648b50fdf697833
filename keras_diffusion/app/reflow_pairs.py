"""Reflow: (noise, image) pairs drawn from a trained flow.

Reflow (Liu et al., 2023) trains a new flow, Flow-2, on the coupling that a
trained flow, Flow-1, defines: pairs `(x0, x1)` where `x1` is what Flow-1's
ODE makes of the noise `x0`. Flow-2 then learns paths that are nearly
straight, so a few Euler steps sample it well. `generate_pairs` writes the
pairs (resumably); `RectifiedFlow.fit({"noise": ..., "images": ...})` trains
on them; `keras_diffusion.metrics.straightness` measures how straight a
flow's paths are.
"""

import hashlib
import json
import math
import os
import shutil

import keras
import numpy as np

from keras_diffusion.guidance import cycled_labels
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.utils.checks import check_int
from keras_diffusion.utils.io import atomic_path
from keras_diffusion.utils.io import read_npz

CHUNK_NAME = "chunk_{:05d}.npz"
SETTINGS_NAME = "settings.json"

__all__ = ["copy_flow", "generate_pairs", "load_pairs"]


def generate_pairs(flow, num_pairs, path, seed=0, batch_size=256, num_steps=100,
                   guidance=None, progress=True, compile=True, sampler="euler"):
    """Draws reflow pairs from a trained flow into an `.npz`, resumably.

    For each chunk of `batch_size` pairs, draws the noise `x0` from NumPy
    (seeded by `seed` and the chunk's index, so a chunk is the same whenever
    it is made) and integrates Flow-1 from it with `num_steps` steps of
    `sampler` (on Flow-1's time grid, its `sampling_shift`) to `x1`. Each
    finished chunk is written atomically to
    `path + ".partial/chunk_NNNNN.npz"`; a rerun after a crash skips the
    chunks already there. At the end the
    chunks are joined into `path` (written atomically) and the `.partial`
    folder is removed. If `path` already exists with `num_pairs` pairs,
    nothing is done.

    The file holds `noise` and `images`, float32 `(num_pairs,) + shape` in
    the flow's space (pixels in about [-1, 1], or a latent flow's scaled
    latents, as `fit({"noise", "images"})` takes them), and for a
    class-conditional flow `labels`, int32 `(num_pairs,)`: the classes in
    turn, each pair drawn with that class.

    Args:
        flow: a trained `RectifiedFlow` (or `LatentRectifiedFlow`), Flow-1.
        num_pairs: int >= 1.
        path: str, the `.npz` to write.
        seed: int >= 0, seeds the noise.
        batch_size: int >= 1, pairs per chunk (and per sampling batch).
        num_steps: int >= 1, sampler steps per pair.
        guidance: float >= 0, classifier-free guidance for a conditional
            flow (default 1: the plain conditional velocity).
        progress: bool, show a progress bar.
        compile: bool, compile the sampling step.
        sampler: `"euler"` or `"heun"` (second order, two network
            evaluations a step; at equal evaluations its samples are
            closer to the flow's ODE solution).

    Returns:
        `path`.

    Example:
    >>> generate_pairs(flow1, 20000, "runs/reflow/pairs.npz", seed=0)
    >>> pairs = load_pairs("runs/reflow/pairs.npz")
    >>> flow2.fit({"noise": pairs["noise"], "images": pairs["images"]})
    """
    _check_flow(flow)
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"The pairs file must end in .npz. Got {path!r}")
    num_pairs = check_int("num_pairs", num_pairs)
    batch_size = check_int("batch_size", batch_size)
    num_steps = check_int("num_steps", num_steps)
    seed = check_int("seed", seed, minimum=0)
    flow.make_sampler(sampler, num_steps)  # raises on an unknown sampler
    if guidance is not None:
        if not flow.conditional:
            raise ValueError("`guidance` needs a class-conditional flow; this one "
                             "is unconditional.")
        if not float(guidance) >= 0:
            raise ValueError(f"`guidance` must be >= 0. Got {guidance}")
        guidance = float(guidance)
    if os.path.isfile(path):
        found = len(load_pairs(path)["noise"])
        if found != num_pairs:
            raise ValueError(
                f"{path!r} already holds {found} pairs, not {num_pairs}; ask for "
                f"{found} pairs or write to another path."
            )
        return path

    partial = path + ".partial"
    os.makedirs(partial, exist_ok=True)
    _check_settings(partial, {
        "num_pairs": num_pairs, "seed": seed, "batch_size": batch_size,
        "num_steps": num_steps, "sampler": sampler, "guidance": guidance,
        "flow": fingerprint(flow),
    })
    chunks = [os.path.join(partial, CHUNK_NAME.format(index))
              for index in range(math.ceil(num_pairs / batch_size))]
    bar = keras.utils.Progbar(num_pairs, unit_name="pair") if progress else None
    for index, chunk in enumerate(chunks):
        start = index * batch_size
        count = min(batch_size, num_pairs - start)
        if not _chunk_is_complete(chunk, count, flow.image_shape):
            arrays = _draw_chunk(flow, seed, index, start, count, sampler,
                                 num_steps, guidance, compile)
            _save_npz(chunk, arrays)
        if bar:
            bar.add(count)

    parts = [load_pairs(chunk) for chunk in chunks]
    _save_npz(path, {key: np.concatenate([part[key] for part in parts])
                     for key in parts[0]})
    shutil.rmtree(partial, ignore_errors=True)
    return path


def copy_flow(flow, seed=None, name=None, **settings):
    """A new flow with `flow`'s configuration and weights: Flow-2 before
    reflow training (Liu et al., 2023, start it from Flow-1).

    Args:
        flow: a `RectifiedFlow` (or `LatentRectifiedFlow`).
        seed: int or None, seeds the copy's training noise and times.
        name: str or None, the copy's name (default: `flow`'s).
        **settings: `RectifiedFlow` arguments that replace `flow`'s in the
            copy, such as `time_sampling` or `velocity_loss`.
    """
    _check_flow(flow)
    config = flow.get_config()
    config["seed"] = seed
    if name is not None:
        config["name"] = name
    config.update(settings)
    copy = type(flow).from_config(config)
    for part in ("network", "vae"):
        if hasattr(flow, part):
            getattr(copy, part).set_weights(getattr(flow, part).get_weights())
    return copy


def chunk_noise(seed, index, count, shape):
    """The noise of chunk `index`: standard normal from `(seed, index)`."""
    rng = np.random.default_rng([int(seed), int(index)])
    return rng.standard_normal((int(count),) + tuple(shape)).astype("float32")


def _draw_chunk(flow, seed, index, start, count, sampler, num_steps, guidance,
                compile):
    noise = chunk_noise(seed, index, count, flow.image_shape)
    arrays = {"noise": noise}
    labels = None
    if flow.conditional:
        labels = cycled_labels(flow.num_classes, count, start)
    images = flow.sample_from_noise(noise, sampler, num_steps, batch_size=count,
                                    progress=False, compile=compile, labels=labels,
                                    guidance=guidance)
    arrays["images"] = images.astype("float32")
    if labels is not None:
        arrays["labels"] = labels
    return arrays


def load_pairs(path):
    """Reads and checks a pairs `.npz`: a dict of `noise`, `images`
    (and `labels`, if the flow was conditional)."""
    path = os.fspath(path)
    pairs = read_npz(path, "reflow pairs")
    noise, images = pairs.get("noise"), pairs.get("images")
    if noise is None or images is None:
        raise ValueError(
            f"{path!r} is not a reflow pairs file: it needs `noise` and "
            f"`images` (it holds: {', '.join(sorted(pairs)) or 'nothing'})."
        )
    if noise.shape != images.shape or noise.ndim < 2 or len(noise) == 0:
        raise ValueError(
            f"In {path!r}, `noise` {noise.shape} and `images` {images.shape} "
            "must have the same shape, with at least one pair."
        )
    labels = pairs.get("labels")
    if labels is not None and labels.shape != (len(noise),):
        raise ValueError(
            f"In {path!r}, `labels` has shape {labels.shape}; expected "
            f"({len(noise)},)."
        )
    return pairs


def fingerprint(flow):
    """A short hash of a flow's network (and VAE, and latent scale), to tell
    Flow-1s apart."""
    digest = hashlib.sha256(repr(getattr(flow, "latent_scale", None)).encode())
    parts = [flow.network] + ([flow.vae] if hasattr(flow, "vae") else [])
    for part in parts:
        for weight in part.get_weights():
            digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


def _check_flow(flow):
    if not isinstance(flow, RectifiedFlow):
        raise ValueError(
            f"Reflow needs a RectifiedFlow (or LatentRectifiedFlow); got a "
            f"{type(flow).__name__}."
        )


def _check_settings(partial, settings):
    """Keeps the chunks of one setting: a rerun with others is an error."""
    settings_path = os.path.join(partial, SETTINGS_NAME)
    if os.path.isfile(settings_path):
        with open(settings_path) as f:
            found = json.load(f)
        if found != settings:
            changed = sorted(key for key in settings
                             if found.get(key) != settings[key])
            raise ValueError(
                f"{partial!r} holds chunks drawn with other settings "
                f"({', '.join(changed)} differ); rerun with the same flow and "
                "settings to resume, or delete that folder to start over."
            )
        return
    with atomic_path(settings_path) as tmp:
        with open(tmp, "w") as f:
            json.dump(settings, f)


def _chunk_is_complete(chunk, count, shape):
    if not os.path.isfile(chunk):
        return False
    try:
        pairs = load_pairs(chunk)
    except ValueError:
        return False  # unreadable: draw it again
    return pairs["noise"].shape == (count,) + tuple(shape)


def _save_npz(path, arrays):
    # Through a file object, so np.savez never renames the temporary file.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
