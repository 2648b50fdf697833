"""The VAE and latent diffusion."""

import keras
import numpy as np
import pytest

from conftest import randomize
from keras_diffusion.models import VAE
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.networks import UNet
from keras_diffusion.networks import VAEDecoder
from keras_diffusion.networks import VAEEncoder


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _vae():
    return VAE(VAEEncoder(latent_channels=2, widths=(8, 16, 16)),
               VAEDecoder((7, 7, 2), widths=(16, 16, 8)), kl_weight=0.01, seed=0)


def _latent_unet(**kwargs):
    return UNet((7, 7, 2), widths=(16,), attention_levels=(0,), embedding_dim=32,
                num_heads=1, **kwargs)


def test_vae_shapes(mnist_batch):
    images, _ = mnist_batch
    vae = _vae()
    latents = vae.encode(images[:3])
    assert tuple(latents.shape) == (3, 7, 7, 2)
    sampled = _np(vae.encode(images[:3], sample=True))
    assert np.abs(sampled - _np(latents)).max() > 0  # a draw, not the mean
    decoded = _np(vae.decode(latents))
    assert decoded.shape == (3, 28, 28, 1)
    assert decoded.min() >= -1 and decoded.max() <= 1


def test_kl_matches_closed_form():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(2, 7, 7, 2)).astype("float32")
    log_variance = rng.normal(size=(2, 7, 7, 2)).astype("float32")
    variance = np.exp(log_variance.astype("float64"))
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2, per element.
    expected = np.mean(-0.5 * log_variance + (variance + mean**2) / 2 - 0.5)
    got = float(_np(VAE.kl_divergence(mean, log_variance)))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(_np(VAE.kl_divergence(np.zeros(3), np.zeros(3)))) == 0.0


def test_vae_fit_lowers_loss_and_reports_terms(mnist_batch):
    images, _ = mnist_batch
    vae = _vae()
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = vae.fit(images, batch_size=32, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert {"reconstruction", "kl"} <= set(history)


def test_latent_scale_gives_unit_variance(mnist_batch):
    images, _ = mnist_batch
    vae = _vae()
    scale = LatentDiffusion.compute_latent_scale(vae, images)
    latents = _np(vae.encode(images)) * scale
    assert latents.std() == pytest.approx(1.0, rel=1e-3)


def test_latent_diffusion_fit_sample_and_roundtrip(mnist_batch, tmp_path):
    images, labels = mnist_batch
    vae = _vae()
    model = LatentDiffusion(_latent_unet(num_classes=10), vae,
                            LatentDiffusion.compute_latent_scale(vae, images))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    frozen = {id(v) for v in vae.weights}
    history = model.fit(images[:64], labels[:64], batch_size=32, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not any(id(v) in frozen for v in model.trainable_variables)
    randomize(model.network)
    kwargs = dict(num_images=3, sampler="ddim", num_steps=4, seed=5, labels=[1, 2, 3],
                  guidance=2.0, progress=False)
    out = model.generate(**kwargs)
    assert out.shape == (3, 28, 28, 1) and 0 <= out.min() and out.max() <= 1
    path = str(tmp_path / "ldm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, LatentDiffusion)
    assert loaded.latent_scale == model.latent_scale
    # The loaded VAE stays frozen: the optimizer sees only the UNet.
    assert len(loaded.trainable_variables) == len(model.trainable_variables)
    assert not any(v.trainable for v in loaded.vae.weights)
    np.testing.assert_allclose(loaded.generate(**kwargs), out, atol=1e-5)


def test_latent_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="image_shape"):
        LatentDiffusion(UNet((8, 8, 2), widths=(16,), attention_levels=()), _vae())


def _jax_cpu_devices():
    from keras_diffusion.utils import jax_cpu

    return min(jax_cpu.usable_cores(), jax_cpu.MAX_DEVICES)


@pytest.mark.skipif(keras.backend.backend() != "jax" or _jax_cpu_devices() < 2,
                    reason="JAX trains data-parallel over several CPU cores")
def test_kd_train_latent_kind_data_parallel_over_cpu_devices(mnist_dir, tmp_path):
    """A fresh `kd` under JAX trains data-parallel over the CPU devices; the
    VAE it loads must be laid out like the rest of the model (built without
    values and assigned, its variables stayed on one device, and JAX refused
    the train step: 'Received incompatible devices for jitted computation')."""
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "keras_diffusion_cli.main", "train", "ldm",
         "--data", mnist_dir, "--vae", "vae", "--max-steps", "1",
         "--batch-size", str(4 * _jax_cpu_devices()), "--out", str(out)],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Training data-parallel on" in result.stdout, result.stdout[-2000:]
    assert (out / "ldm.keras").is_file()
