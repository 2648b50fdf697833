"""`export_model()`: the library function behind `kd export`.

An export is a directory that samples images without Keras:

    OUT/
      denoiser.onnx     the network at one sampling step (classifier-free
                        guidance inside, for a class-conditional model)
      decoder.onnx      latent models: the VAE decoder
      sampler.json      the sampler's timesteps and coefficients, the shapes,
                        the batch size and the defaults of `kd sample`

(`.tflite` files for `format="litert"`, SavedModel directories `denoiser/`
and `decoder/` for `format="tf_saved_model"`.) `examples/sample_onnx.py`
runs DPM-Solver++, DDIM, Euler or Heun from an ONNX export with NumPy and onnxruntime
only and gives `kd sample`'s images for the same seed.
"""

import json
import math
import os

import keras
import numpy as np
from keras import ops

from keras_diffusion.guidance import DEFAULT_GUIDANCE
from keras_diffusion.guidance import PER_CLASS_DEFAULT
from keras_diffusion.models import SAMPLING_MODELS
from keras_diffusion.presets import load_model
from keras_diffusion.utils.io import atomic_directory
from keras_diffusion.utils.io import check_writable_dir
from keras_diffusion.version import __version__

# format -> file extension of each exported network ("" is a directory)
FORMATS = {"onnx": ".onnx", "tf_saved_model": "", "litert": ".tflite"}
EXPORT_SAMPLERS = ("dpm", "ddim", "euler", "heun")
# sampler -> (sampler.json key, the sampler's table) of each step's
# coefficients (the flows' steps need only their times)
STEP_TABLES = {
    "ddim": (("alpha_bar", "alpha_bars"), ("alpha_bar_prev", "alpha_bars_prev"),
             ("direction", "direction")),
    "dpm": (("alpha_bar", "alpha_bars"), ("coef_samples", "coef_samples"),
            ("coef_images", "coef_images"), ("inverse_r", "inverse_r")),
}
SAMPLER_FILE = "sampler.json"
DEFAULT_BATCH_SIZE = 16
EXPORT_EXTRA = 'pip install "keras-diffusion[export]"'
# (format, backend) -> the modules Keras' exporter imports there, and how to
# install them.
NEEDS = {
    ("onnx", "tensorflow"): (("tf2onnx", EXPORT_EXTRA), ("onnx", EXPORT_EXTRA)),
    ("onnx", "jax"): (("jax2onnx", EXPORT_EXTRA), ("onnx", EXPORT_EXTRA)),
    ("onnx", "torch"): (("onnx", EXPORT_EXTRA), ("onnxscript", EXPORT_EXTRA)),
    # Not in the extra: torch_xla needs the torch release it was built for,
    # and litert-torch pins other packages' versions.
    ("tf_saved_model", "torch"): (
        ("torch_xla", "pip install torch-xla (for your torch release), or "
                      "export from the tensorflow or jax backend"),),
    ("litert", "torch"): (
        ("litert_torch", "pip install litert-torch, or export from the "
                         "tensorflow backend"),),
}
CANNOT = {
    ("litert", "jax"): ("Keras exports LiteRT from the tensorflow and torch "
                        "backends only; export from the tensorflow backend."),
}


class ExportError(RuntimeError):
    """The exporter of the backend failed; the message says how."""


def export_model(model="cfg", out_dir="export", format="onnx", sampler=None,
                 num_steps=None, batch_size=DEFAULT_BATCH_SIZE, verbose=False):
    """Exports a model's denoising network (and VAE decoder) to run without Keras.

    Writes, atomically, into `out_dir` (a partial export is never left
    behind): `denoiser.onnx`, the network's prediction at one sampling step
    as a function of `x` (float32 `(batch_size,) + sample_shape`) and `t`
    (float32 `(1,)`, the network's time in [0, 1]) and, for a
    class-conditional model, `labels` (int32 `(batch_size,)`) and `guidance`
    (float32 `(1,)`), combined as `uncond + guidance * (cond - uncond)` in
    the graph; for a latent model `decoder.onnx`, the VAE decoder mapping
    `latents / latent_scale` to images in [-1, 1]; and `sampler.json`, the
    sampler's timesteps and coefficients as the library computes them (float32
    values), with the shapes, the latent scale and `kd sample`'s defaults.
    `examples/sample_onnx.py` samples from it.

    Args:
        model: a shipped name, `.keras` file, preset directory, hub handle,
            or a `DDPM` / `RectifiedFlow` (or latent) model.
        out_dir: the directory to write; an existing export there is
            replaced.
        format: `"onnx"`, `"tf_saved_model"` or `"litert"`.
        sampler: `"dpm"` (DPM-Solver++) or `"ddim"` (eta 0) for a
            diffusion model, `"euler"` or `"heun"` for a flow; `None`
            means the model's default, or `"dpm"` where that one is
            stochastic (an exported step takes no noise).
        num_steps: int, sampling steps; `None` means the sampler's default.
        batch_size: int >= 1, the graphs' fixed batch size (the example
            runs any number of images in batches of it).
        verbose: bool, let the exporter print its messages.

    Returns:
        `out_dir`.

    Example:
    >>> export_model("cfg", "cfg_onnx", format="onnx")
    >>> # python examples/sample_onnx.py cfg_onnx --class 3 --out three.png
    """
    if format not in FORMATS:
        raise ValueError(
            f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}."
        )
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1. Got {batch_size}")
    batch_size = int(batch_size)
    check_exporter(format)
    out_dir = os.fspath(out_dir)
    _check_out_dir(out_dir)
    check_writable_dir(os.path.dirname(os.path.abspath(out_dir)))
    source = model if isinstance(model, str) else None
    if not isinstance(model, SAMPLING_MODELS):
        model = load_model(model, expected_type=SAMPLING_MODELS)
    spec = sampler_spec(model, sampler, num_steps)
    spec["source"] = source
    spec["format"] = format
    spec["batch_size"] = batch_size
    extension = FORMATS[format]
    networks = {"denoiser": (Denoiser(model.network, model.num_classes,
                                      noise_from_output=_noise_from_output(model)),
                             denoiser_signature(model, batch_size))}
    vae = getattr(model, "vae", None)
    if vae is not None:
        networks["decoder"] = (Decoder(vae.decoder), [keras.InputSpec(
            shape=(batch_size,) + tuple(vae.latent_shape), dtype="float32",
            name="latents")])
    spec["files"] = {name: name + extension for name in networks}
    spec["inputs"] = {name: _input_names(signature)
                      for name, (_, signature) in networks.items()}
    for network, signature in networks.values():
        network(_zeros(signature[0]))  # builds the wrapper (the TF exporter needs it)
    with atomic_directory(out_dir) as tmp:
        for name, (network, signature) in networks.items():
            _export(network, os.path.join(tmp, spec["files"][name]), format,
                    signature, verbose)
        with open(os.path.join(tmp, SAMPLER_FILE), "w", encoding="utf-8") as f:
            f.write(json.dumps(spec, indent=2) + "\n")
    return out_dir


def check_exporter(format, backend=None):
    """Raises `ValueError` unless the backend can export `format` here.

    Says which backend cannot (and why), or which package to install.
    """
    import importlib.util

    backend = backend or keras.backend.backend()
    if (format, backend) in CANNOT:
        raise ValueError(
            f"`format` {format} cannot be exported under the {backend} "
            f"backend: {CANNOT[format, backend]}"
        )
    missing = [(name, how) for name, how in NEEDS.get((format, backend), ())
               if importlib.util.find_spec(name) is None]
    if missing:
        names = ", ".join(name for name, _ in missing)
        raise ValueError(
            f"`format` {format} under the {backend} backend needs {names}: "
            f"{missing[0][1]}."
        )


def sampler_spec(model, sampler=None, num_steps=None):
    """The `sampler.json` of an export: what the example needs to sample.

    The coefficients come from the library's own sampler object (as float32
    values, which is what its compiled step uses), so the example's
    arithmetic is the library's.

    Args:
        model: a `DDPM` or `RectifiedFlow` (or latent) model.
        sampler, num_steps: as for `export_model`.

    Returns:
        A JSON-ready dict.
    """
    name = sampler
    if name is None:
        # An exported step takes no noise: the deterministic default.
        name = model.default_sampler if model.default_sampler in EXPORT_SAMPLERS else "dpm"
    if name not in EXPORT_SAMPLERS:
        raise ValueError(
            f"Sampler {name!r} cannot be exported; choose dpm or ddim "
            "(diffusion models) or euler or heun (flows)."
        )
    step_sampler = model.make_sampler(name, num_steps)
    steps = []
    for t, t_next in step_sampler.timesteps():
        step = {"t": _number(t), "t_next": _number(t_next),
                "time": _float32(model.network_times(_scalar(t)))}
        if name in STEP_TABLES:
            step.update({
                key: _float32(step_sampler.lookup(table, _scalar(t)))
                for key, table in STEP_TABLES[name]
            })
        else:
            step["time_next"] = _float32(model.network_times(_scalar(t_next)))
        steps.append(step)
    vae = getattr(model, "vae", None)
    schedule = getattr(model, "schedule", None)
    return {
        "format_version": 1,
        "keras_diffusion_version": _version(),
        "model_class": type(model).__name__,
        "image_shape": list(model.output_image_shape),
        "sample_shape": list(model.image_shape),
        "latent_scale": None if vae is None else float(model.latent_scale),
        "num_classes": model.num_classes,
        "default_guidance": DEFAULT_GUIDANCE if model.conditional else None,
        "per_class_default": PER_CLASS_DEFAULT,
        "default_num_images": 16,
        "schedule": None if schedule is None else {
            "class_name": type(schedule).__name__,
            "config": schedule.get_config(),
        },
        "sampler": {
            "name": name,
            "num_steps": step_sampler.num_steps,
            "clip_sample": bool(getattr(step_sampler, "clip_sample", False)),
            # What a diffusion sampler multiplies the noise predictions by.
            "pred_noise_scale": float(getattr(step_sampler, "pred_noise_scale", 1.0)),
            "steps": steps,
        },
        "noise": ("numpy.random.default_rng(seed).standard_normal((N,) + "
                  "sample_shape).astype('float32')"),
    }


def denoiser_signature(model, batch_size):
    """The denoiser's inputs: `x`, `t` and, if conditional, `labels` and `guidance`."""
    signature = {
        "x": keras.InputSpec(shape=(batch_size,) + tuple(model.image_shape),
                             dtype="float32", name="x"),
        "t": keras.InputSpec(shape=(1,), dtype="float32", name="t"),
    }
    if model.conditional:
        signature["labels"] = keras.InputSpec(shape=(batch_size,), dtype="int32",
                                              name="labels")
        signature["guidance"] = keras.InputSpec(shape=(1,), dtype="float32",
                                                name="guidance")
    return [signature]


class Denoiser(keras.Model):
    """The network at one sampling step, with classifier-free guidance.

    The computation of `GenerativeModel.run_network` and `guided_output`
    (one forward pass over the doubled batch, then
    `uncond + guidance * (cond - uncond)`), written with the ops that every
    exporter converts.

    A v-predicting `DDPM`'s output becomes the noise prediction there
    (`DDPM.noise_from_output`), so the example's steps are the same for
    every diffusion model.

    Args:
        network: the model's network (a `UNet`).
        num_classes: int for a class-conditional network (the null class
            is `num_classes`), else `None`.
        noise_from_output: `None`, or for a v-prediction a callable
            `(outputs, samples, times) -> noise prediction` (the network
            times, `t / T`).

    Call arguments:
        inputs: dict with `"x"` (batch of samples), `"t"` (shape `(1,)`, the
            network time) and, if conditional, `"labels"` and `"guidance"`
            (shape `(1,)`).
    """

    def __init__(self, network, num_classes=None, noise_from_output=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.num_classes = num_classes
        self.noise_from_output = noise_from_output

    def call(self, inputs):
        outputs = self._guided_output(inputs)
        if self.noise_from_output is None:
            return outputs
        return self.noise_from_output(outputs, inputs["x"], inputs["t"])

    def _guided_output(self, inputs):
        samples = inputs["x"]
        batch_size = ops.shape(samples)[0]
        if self.num_classes is None:
            times = ops.broadcast_to(inputs["t"], (batch_size,))
            return self.network({"noisy_images": samples, "times": times})
        labels = ops.cast(inputs["labels"], "int32")
        null_labels = ops.full_like(labels, self.num_classes)
        both = self.network({
            "noisy_images": ops.concatenate([samples, samples], axis=0),
            "times": ops.broadcast_to(inputs["t"], (2 * batch_size,)),
            "labels": ops.concatenate([labels, null_labels], axis=0),
        })
        cond, uncond = ops.split(both, 2, axis=0)
        return uncond + inputs["guidance"] * (cond - uncond)


def _noise_from_output(model):
    """`Denoiser`'s `noise_from_output` for `model`: `None` unless it
    predicts v; else `DDPM.noise_from_output` at the network times."""
    if getattr(model, "prediction", "epsilon") == "epsilon":
        return None
    num_timesteps = model.schedule.num_timesteps

    def noise_from_output(outputs, samples, times):
        timesteps = ops.cast(ops.round(times * num_timesteps), "int32")
        return model.noise_from_output(outputs, samples, timesteps)

    return noise_from_output


class Decoder(keras.Model):
    """`VAE.decode`: latents -> images in [-1, 1] (`2 * sigmoid(logits) - 1`)."""

    def __init__(self, decoder, **kwargs):
        super().__init__(**kwargs)
        self.decoder = decoder

    def call(self, latents):
        return 2.0 * ops.sigmoid(self.decoder(latents)) - 1.0


def _export(network, path, format, signature, verbose):
    import contextlib
    import io
    import warnings

    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(
        io.StringIO())
    try:
        with quiet, warnings.catch_warnings():
            if not verbose:  # the converters' deprecation notices, not ours
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
            network.export(path, format=format, input_signature=signature,
                           verbose=verbose)
    except Exception as error:
        text = " ".join(str(error).split())[:400]
        raise ExportError(
            f"The {keras.backend.backend()} backend's {format} exporter failed "
            f"({type(error).__name__}: {text})."
        ) from None


def _check_out_dir(out_dir):
    if os.path.isfile(out_dir):
        raise ValueError(f"`out_dir` {out_dir!r} is a file; give a directory name.")
    if (os.path.isdir(out_dir) and os.listdir(out_dir)
            and not os.path.isfile(os.path.join(out_dir, SAMPLER_FILE))):
        raise ValueError(
            f"`out_dir` {out_dir!r} is a directory that holds other files (not an "
            "export); choose a new or empty one."
        )


def _zeros(spec):
    if isinstance(spec, dict):
        return {name: _zeros(value) for name, value in spec.items()}
    return np.zeros(spec.shape, spec.dtype)


def _input_names(signature):
    specs = signature[0].values() if isinstance(signature[0], dict) else signature
    return [spec.name for spec in specs]


def _scalar(value):
    value = np.asarray(value)
    return value.astype("int32" if np.issubdtype(value.dtype, np.integer)
                        else "float32")


def _number(value):
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.integer):
        return int(value)
    return float(np.float32(value))


def _float32(value):
    value = float(np.float32(ops.convert_to_numpy(value)))
    if not math.isfinite(value):
        raise ValueError(f"A sampler coefficient is not finite ({value}).")
    return value


def _version():
    return __version__
