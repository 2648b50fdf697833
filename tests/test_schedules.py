import keras
import numpy as np
import pytest

from keras_diffusion.schedules import CosineSchedule
from keras_diffusion.schedules import LinearBetaSchedule
from keras_diffusion.schedules import as_schedule


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("schedule", [LinearBetaSchedule(), CosineSchedule()])
def test_rates_monotone_and_in_range(schedule):
    assert np.all(np.diff(schedule.alphas_cumprod) < 0)  # float64, strict
    t = np.arange(schedule.num_timesteps)
    signal, noise = _np(schedule.signal_rates(t)), _np(schedule.noise_rates(t))
    assert np.all((signal > 0) & (signal < 1)) and np.all((noise > 0) & (noise <= 1))
    assert np.all(np.diff(signal) <= 0) and np.all(np.diff(noise) >= 0)
    np.testing.assert_allclose(signal**2 + noise**2, 1.0, atol=1e-5)


def test_linear_schedule_matches_ddpm_constants():
    schedule = LinearBetaSchedule()
    assert schedule.num_timesteps == 1000
    np.testing.assert_allclose(schedule.betas[[0, -1]], [1e-4, 0.02])
    np.testing.assert_allclose(schedule.alphas_cumprod[-1], 4.04e-5, rtol=0.01)


@pytest.mark.parametrize("schedule", [LinearBetaSchedule(50), CosineSchedule(50)])
def test_closed_form_matches_step_by_step_forward_process(schedule):
    """q(x_t | x_0) in closed form has the mean and variance of t+1 steps of
    x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps."""
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, size=(1, 2, 2, 1)).astype("float32")
    samples = np.repeat(x0, 20000, axis=0).astype("float64")
    for t in range(schedule.num_timesteps):
        beta = schedule.betas[t]
        samples = np.sqrt(1 - beta) * samples + np.sqrt(beta) * rng.normal(
            size=samples.shape
        )
        if t in (0, 10, schedule.num_timesteps - 1):
            signal = _np(schedule.signal_rates(np.array([t])))[0]
            noise = _np(schedule.noise_rates(np.array([t])))[0]
            np.testing.assert_allclose(samples.mean(0), signal * x0[0], atol=0.03)
            np.testing.assert_allclose(samples.std(0), noise, rtol=0.05, atol=0.002)


def test_add_noise_is_the_closed_form():
    schedule = LinearBetaSchedule()
    images = np.full((2, 4, 4, 1), 0.5, "float32")
    noises = np.ones((2, 4, 4, 1), "float32")
    t = np.array([0, 999])
    noisy = _np(schedule.add_noise(images, noises, t))
    alpha_bar = schedule.alphas_cumprod[t]
    expected = np.sqrt(alpha_bar) * 0.5 + np.sqrt(1 - alpha_bar)
    np.testing.assert_allclose(noisy[:, 0, 0, 0], expected, rtol=1e-5)


def test_alpha_bar_before_the_first_step_is_one():
    assert _np(LinearBetaSchedule().alpha_bar(np.array([-1])))[0] == 1.0


def test_schedule_config_roundtrip_and_names():
    schedule = CosineSchedule(500, offset=0.01)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert isinstance(restored, CosineSchedule)
    np.testing.assert_allclose(restored.betas, schedule.betas)
    assert isinstance(as_schedule("linear"), LinearBetaSchedule)
    with pytest.raises(ValueError, match="Unknown schedule"):
        as_schedule("quadratic")
    with pytest.raises(ValueError):
        LinearBetaSchedule(beta_start=0.1, beta_end=0.01)
