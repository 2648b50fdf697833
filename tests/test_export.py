"""`kd export`: an ONNX export sampled by `examples/sample_onnx.py` (NumPy
and onnxruntime only, in a fresh process where Keras and every backend
cannot be imported) gives `kd sample`'s images for the same seed, within
1e-3 per pixel, under each backend.

Every backend exports ONNX: TensorFlow through tf2onnx, JAX through
jax2onnx, PyTorch through torch.onnx (onnxscript). The other formats:
`tf_saved_model` from TensorFlow and JAX (PyTorch would need torch_xla),
`litert` from TensorFlow (JAX: Keras refuses; PyTorch would need
litert-torch); see docs/sharing.md.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT
from conftest import randomize
from keras_diffusion.app.export import check_exporter
from keras_diffusion.app.export import export_model
from keras_diffusion.models import DDPM
from keras_diffusion.models import VAE
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.networks import UNet
from keras_diffusion.networks import VAEDecoder
from keras_diffusion.networks import VAEEncoder
from keras_diffusion.app.sample import sample
from keras_diffusion_cli.main import cli

BACKEND = keras.backend.backend()
EXAMPLE = os.path.join(ROOT, "examples", "sample_onnx.py")
BLOCKED = ("keras", "keras_diffusion", "tensorflow", "jax", "torch")


def _onnx_exporter():
    try:
        check_exporter("onnx")
    except ValueError as error:
        pytest.skip(str(error))


def _pixel_unet(**kwargs):
    return UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                num_heads=1, **kwargs)


def _latent_cfg():
    vae = VAE(VAEEncoder(latent_channels=2, widths=(8, 16, 16)),
              VAEDecoder((7, 7, 2), widths=(16, 16, 8)), seed=0)
    unet = UNet((7, 7, 2), widths=(16,), attention_levels=(0,), embedding_dim=32,
                num_heads=1, num_classes=10)
    return LatentDiffusion(unet, vae, latent_scale=1.3)


# name -> (model, sampler, kd sample's arguments, the example's flags)
MODELS = {
    "latent-cfg-dpm": (_latent_cfg, None, {"label": 3, "guidance": 2.0},
                       ["--class", "3", "--guidance", "2"]),
    "pixel-flow-euler": (lambda: RectifiedFlow(_pixel_unet()), None, {}, []),
    "pixel-flow-heun": (lambda: RectifiedFlow(_pixel_unet()), "heun", {}, []),
    "pixel-ddpm-dpm": (lambda: DDPM(_pixel_unet()), None, {}, []),
    # Scaled noise predictions travel in sampler.json.
    "pixel-ddpm-ddim": (lambda: DDPM(_pixel_unet(), pred_noise_scale=1.05), "ddim",
                        {}, []),
    "pixel-ddpm-v-dpm": (lambda: DDPM(_pixel_unet(), prediction="v",
                                      pred_noise_scale=1.05), None, {}, []),
}


def _run_example(export_dir, flags, tmp_path):
    """Runs the example in a fresh process that cannot import Keras or a backend."""
    blocked = tmp_path / "blocked"
    blocked.mkdir(exist_ok=True)
    for name in BLOCKED:
        (blocked / f"{name}.py").write_text(
            f"raise ImportError('sample_onnx.py must not import {name}')\n")
    env = dict(os.environ, PYTHONPATH=str(blocked))
    result = subprocess.run([sys.executable, EXAMPLE, str(export_dir)] + flags,
                            cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_example_gives_kd_samples_images(name, tmp_path):
    _onnx_exporter()
    make, sampler, sample_args, flags = MODELS[name]
    model = make()
    randomize(model, scale=0.05)
    export_dir = tmp_path / "export"
    # 6 images in graphs of batch 4: the example pads the second batch.
    export_model(model, export_dir, sampler=sampler, num_steps=3, batch_size=4)
    with open(export_dir / "sampler.json") as f:
        exported = json.load(f)["sampler"]["name"]
    # Without a sampler, the model's default, or dpm for an unconditional
    # DDPM (whose default, dpm-sde, takes noise at every step).
    assert exported == sampler or (sampler is None and exported in ("dpm", "euler"))
    expected, _ = sample(model, sampler=exported, num_steps=3, num_images=6,
                         seed=5, out=str(tmp_path / "kd.npz"), progress=False,
                         **sample_args)
    stdout = _run_example(export_dir, flags + ["--num", "6", "--seed", "5",
                                               "--out", "onnx.npz"], tmp_path)
    assert "Wrote onnx.npz" in stdout
    got = np.load(tmp_path / "onnx.npz")
    assert got["images"].shape == expected.shape
    np.testing.assert_allclose(got["images"], expected, rtol=0, atol=1e-3)
    assert np.abs(expected - 0.5).max() > 0.1  # not a blank image
    if "labels" in got:
        assert (got["labels"] == 3).all()


def test_kd_export_writes_the_files_and_the_example_a_png(tmp_path):
    _onnx_exporter()
    model = _latent_cfg()
    preset = tmp_path / "preset"
    model.save_to_preset(preset)
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export", "--model", str(preset), "--format",
                                      "onnx", "--out", str(out), "--steps", "2",
                                      "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["decoder.onnx", "denoiser.onnx",
                                       "sampler.json"]
    with open(out / "sampler.json") as f:
        spec = json.load(f)
    assert spec["sampler"]["name"] == "dpm" and len(spec["sampler"]["steps"]) == 2
    assert spec["inputs"] == {"denoiser": ["x", "t", "labels", "guidance"],
                              "decoder": ["latents"]}
    assert spec["sample_shape"] == [7, 7, 2] and spec["image_shape"] == [28, 28, 1]
    assert spec["latent_scale"] == 1.3 and spec["default_guidance"] == 4.0
    _run_example(out, ["--class", "3", "--seed", "0", "--num", "3", "--out",
                       "x.png"], tmp_path)
    with open(tmp_path / "x.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("format", ["tf_saved_model", "litert"])
def test_other_formats(format, tmp_path):
    try:
        check_exporter(format)
    except ValueError as error:
        pytest.skip(str(error))
    out = tmp_path / "export"
    export_model(RectifiedFlow(_pixel_unet()), out, format=format, num_steps=2,
                 batch_size=2)
    denoiser = "denoiser.tflite" if format == "litert" else "denoiser"
    assert sorted(os.listdir(out)) == [denoiser, "sampler.json"]
    with open(out / "sampler.json") as f:
        assert json.load(f)["files"] == {"denoiser": denoiser}


@pytest.mark.parametrize("args, match", [
    (["--model", "vae"], "holds a VAE"),
    (["--model", "ddpm", "--sampler", "euler"], "Unknown sampler 'euler'"),
    (["--model", "ddpm", "--sampler", "heun"], "Unknown sampler 'heun'"),
    (["--model", "ddpm", "--sampler", "ddpm"], "cannot be exported"),
    (["--model", "rf-pixel", "--sampler", "ddim"], "Unknown sampler 'ddim'"),
    (["--format", "pdf"], "'pdf' is not one of"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_bad_export_flags(args, match, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--out", str(tmp_path / "x")] + args)
    assert result.exit_code == 2, result.output
    assert match in result.output
    assert not (tmp_path / "x").exists()


def test_export_refuses_a_directory_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        export_model("rf-pixel", tmp_path)


def test_unavailable_formats_say_why():
    with pytest.raises(ValueError, match="litert cannot be exported under the jax"):
        check_exporter("litert", backend="jax")
    with pytest.raises(ValueError, match="torch_xla"):
        check_exporter("tf_saved_model", backend="torch")


def test_a_missing_converter_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax2onnx" else real(name, *a))
    with pytest.raises(ValueError,
                       match=r'jax2onnx: pip install "keras-diffusion\[export\]"'):
        check_exporter("onnx", backend="jax")
