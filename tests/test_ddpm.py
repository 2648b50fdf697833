import keras
import numpy as np

from conftest import randomize
from keras_diffusion.models import DDPM


class BatchLosses(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def _model(network, learning_rate=2e-3, seed=1):
    model = DDPM(network, seed=seed)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, use_ema=True,
                                                   ema_momentum=0.9))
    return model


def test_fit_on_real_mnist_lowers_loss(tiny_unet, mnist_batch):
    images, _ = mnist_batch
    model = _model(tiny_unet)
    history = model.fit(images, batch_size=32, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses


def test_training_noise_changes_every_step(tiny_unet, mnist_batch):
    """With a learning rate of 0 the weights stay put, so the per-step loss
    on one fixed batch changes only if the noise and timesteps do. (Under
    JAX an unattached SeedGenerator would repeat the same noise.)"""
    images, _ = mnist_batch
    batch = np.repeat(images[:16], 4, axis=0)
    model = _model(tiny_unet, learning_rate=0.0)
    callback = BatchLosses()
    model.fit(batch, batch_size=16, epochs=1, shuffle=False, verbose=0,
              callbacks=[callback])
    # Keras logs the running mean; recover each step's loss.
    means = np.array(callback.losses)
    step_losses = means * np.arange(1, len(means) + 1)
    step_losses[1:] -= means[:-1] * np.arange(1, len(means))
    assert len(set(np.round(step_losses, 5))) == len(step_losses), step_losses
    state_before = keras.ops.convert_to_numpy(model.seed_generator.state)
    model.fit(batch[:16], batch_size=16, epochs=1, verbose=0)
    assert not np.array_equal(
        state_before, keras.ops.convert_to_numpy(model.seed_generator.state)
    )


def test_generate_is_seeded_and_in_range(tiny_unet):
    model = _model(tiny_unet)
    randomize(tiny_unet)
    first = model.generate(3, sampler="ddim", num_steps=5, seed=7, progress=False)
    again = model.generate(3, sampler="ddim", num_steps=5, seed=7, progress=False)
    other = model.generate(3, sampler="ddim", num_steps=5, seed=8, progress=False)
    assert first.shape == (3, 28, 28, 1)
    assert first.min() >= 0 and first.max() <= 1
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3
    batched = model.generate(3, sampler="ddim", num_steps=5, seed=7,
                             batch_size=2, progress=False)
    np.testing.assert_allclose(batched, first, atol=1e-4)


def test_eager_and_compiled_sampling_agree(tiny_unet):
    model = _model(tiny_unet)
    randomize(tiny_unet)
    kwargs = dict(sampler="ddpm", num_steps=4, seed=1, progress=False)
    compiled = model.generate(2, compile=True, **kwargs)
    eager = model.generate(2, compile=False, **kwargs)
    np.testing.assert_allclose(compiled, eager, atol=1e-3)


def test_save_and_load_roundtrip(tiny_unet, mnist_batch, tmp_path):
    images, _ = mnist_batch
    model = _model(tiny_unet)
    model.fit(images[:64], batch_size=32, epochs=1, verbose=0)
    path = str(tmp_path / "ddpm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, DDPM)
    kwargs = dict(num_images=2, sampler="ddim", num_steps=5, seed=3, progress=False)
    np.testing.assert_allclose(loaded.generate(**kwargs), model.generate(**kwargs),
                               atol=1e-5)
    # Training can continue from the saved optimizer state.
    loaded.fit(images[:32], batch_size=32, epochs=1, verbose=0)


def test_fit_under_mixed_bfloat16(mnist_batch):
    # The network computes in bfloat16; the loss stays in float32 (TensorFlow
    # does not promote bfloat16 - float32 by itself).
    from keras_diffusion.networks import UNet

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _model(UNet(widths=(8, 16), attention_levels=(1,),
                            embedding_dim=32, num_heads=1))
    finally:
        keras.config.set_dtype_policy("float32")
    images, _ = mnist_batch
    history = model.fit(images[:32], batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
