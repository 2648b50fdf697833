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


def test_v_prediction_gives_back_the_noise():
    """`noise_from_output` inverts `v = alpha * eps - sigma * x_0` at `x_t`."""
    from keras_diffusion.networks import UNet

    model = DDPM(UNet(image_shape=(8, 8, 1), widths=(8,), attention_levels=()),
                 prediction="v")
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (5, 8, 8, 1)).astype("float32")
    noises = rng.standard_normal((5, 8, 8, 1)).astype("float32")
    timesteps = np.array([0, 10, 300, 700, 999], "int32")
    alpha_bar = model.schedule.alphas_cumprod[timesteps].reshape(-1, 1, 1, 1)
    noisy = np.sqrt(alpha_bar) * images + np.sqrt(1 - alpha_bar) * noises
    v = np.sqrt(alpha_bar) * noises - np.sqrt(1 - alpha_bar) * images
    pred_noises = model.noise_from_output(keras.ops.convert_to_tensor(v, "float32"),
                                          noisy.astype("float32"), timesteps)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pred_noises), noises,
                               atol=1e-4)


class _NoiseRateTimesSamples(keras.layers.Layer):
    """`sigma_t * x_t`: the noise prediction that a v-prediction of zero
    stands for (`eps = sigma * x_t + alpha * v`)."""

    def __init__(self, schedule, **kwargs):
        super().__init__(**kwargs)
        self.schedule = schedule

    def call(self, samples, times):
        timesteps = keras.ops.cast(
            keras.ops.round(times * self.schedule.num_timesteps), "int32")
        noise_rates = self.schedule.noise_rates(timesteps)
        return keras.ops.reshape(noise_rates, (-1, 1, 1, 1)) * samples


def _fixed_network(output):
    samples = keras.Input((8, 8, 1), name="noisy_images")
    times = keras.Input((), name="times")
    return keras.Model({"noisy_images": samples, "times": times},
                       output(samples, times))


def test_min_snr_weights_v_and_noise_errors_alike():
    """With min-SNR, a v-prediction and the noise prediction it stands for
    have the same loss: the v error is the noise error over alpha, and the
    weights are min(SNR, 5) / (SNR + 1) against min(SNR, 5) / SNR (and
    min(SNR + 1, 6) over the same for `"min_snr_plus_one"`)."""
    from keras_diffusion.schedules import LinearBetaSchedule

    schedule = LinearBetaSchedule()
    images = np.random.default_rng(0).uniform(-1, 1, (64, 8, 8, 1)).astype("float32")
    zero_v = _fixed_network(lambda samples, times: 0.0 * samples)
    same_noise = _fixed_network(_NoiseRateTimesSamples(schedule))
    losses = {}
    for weighting in ("min_snr", "min_snr_plus_one", "uniform"):
        for prediction, network in (("v", zero_v), ("epsilon", same_noise)):
            model = DDPM(network, schedule=schedule, seed=3, prediction=prediction,
                         loss_weighting=weighting)
            losses[weighting, prediction] = float(model.compute_loss(x=images))
    for weighting in ("min_snr", "min_snr_plus_one"):
        np.testing.assert_allclose(losses[weighting, "v"],
                                   losses[weighting, "epsilon"], rtol=1e-4)
    # Plus one weighs every timestep more, most where SNR is small.
    assert losses["min_snr_plus_one", "v"] > 1.5 * losses["min_snr", "v"], losses
    # Unweighted, the two losses differ: the noise error is alpha times smaller.
    assert losses["uniform", "epsilon"] < 0.9 * losses["uniform", "v"], losses


def test_v_prediction_trains_samples_and_saves(tiny_unet, mnist_batch, tmp_path):
    images, _ = mnist_batch
    model = DDPM(tiny_unet, seed=1, prediction="v", loss_weighting="min_snr")
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(images, batch_size=32, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = str(tmp_path / "v.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.prediction == "v"
    for sampler in ("dpm", "ddim"):
        samples = loaded.generate(2, sampler=sampler, num_steps=4, progress=False)
        np.testing.assert_allclose(samples, model.generate(
            2, sampler=sampler, num_steps=4, progress=False), atol=1e-5)
        assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0


def test_bad_prediction_is_refused(tiny_unet):
    import pytest

    with pytest.raises(ValueError, match="`prediction` must be one of"):
        DDPM(tiny_unet, prediction="x0")


def test_pred_noise_scale_reaches_every_sampler_and_is_saved(tiny_unet, tmp_path):
    import pytest

    from conftest import randomize

    model = DDPM(tiny_unet, pred_noise_scale=1.04)
    randomize(model, scale=0.05)
    for sampler in ("ddpm", "ddim", "dpm", "dpm-sde"):
        assert model.make_sampler(sampler, 4).pred_noise_scale == 1.04
    path = str(tmp_path / "scaled.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.pred_noise_scale == 1.04
    scaled = loaded.generate(2, sampler="ddim", num_steps=4, progress=False)
    np.testing.assert_allclose(scaled, model.generate(
        2, sampler="ddim", num_steps=4, progress=False), atol=1e-5)
    # The scale changes the samples; 1 gives back the unscaled ones.
    loaded.pred_noise_scale = 1.0
    plain = loaded.generate(2, sampler="ddim", num_steps=4, progress=False)
    assert np.abs(plain - scaled).max() > 1e-4
    with pytest.raises(ValueError, match="pred_noise_scale"):
        DDPM(tiny_unet, pred_noise_scale=0.0)


def test_input_perturbation_moves_the_inputs_not_the_targets():
    """DDPM-IP noises the inputs with `eps + gamma * xi` and keeps `eps` (or
    its `v`) as the target. A network that outputs zeros sees only the
    targets, so its loss is the same with and without; one that outputs its
    input `x_t` sees the extra `sigma_t * gamma * xi`, whose square adds
    about `gamma ** 2 * mean(sigma_t ** 2)` to the loss."""
    import pytest

    from keras_diffusion.schedules import LinearBetaSchedule

    schedule = LinearBetaSchedule()
    images = np.random.default_rng(0).uniform(-1, 1, (256, 8, 8, 1)).astype("float32")
    zero = _fixed_network(lambda samples, times: 0.0 * samples)
    identity = _fixed_network(lambda samples, times: 1.0 * samples)

    def loss(network, gamma, prediction="epsilon"):
        # The same seed draws the same timesteps and noise before `xi`.
        model = DDPM(network, schedule=schedule, seed=3, prediction=prediction,
                     input_perturbation=gamma)
        return float(model.compute_loss(x=images))

    for prediction in ("epsilon", "v"):
        np.testing.assert_allclose(loss(zero, 0.5, prediction),
                                   loss(zero, 0.0, prediction), rtol=1e-5)
    gamma = 0.5
    mean_noise_variance = float(np.mean(1.0 - schedule.alphas_cumprod))
    extra = loss(identity, gamma) - loss(identity, 0.0)
    np.testing.assert_allclose(extra, gamma**2 * mean_noise_variance, rtol=0.15)
    with pytest.raises(ValueError, match="input_perturbation"):
        DDPM(zero, input_perturbation=-0.1)
