import keras
import numpy as np
import pytest

from keras_diffusion.samplers import DDIMSampler
from keras_diffusion.samplers import DDPMSampler
from keras_diffusion.samplers import DPMSolverSampler
from keras_diffusion.samplers import EulerSampler
from keras_diffusion.samplers import HeunSampler
from keras_diffusion.samplers import SamplerOutput
from keras_diffusion.samplers import make_step_function
from keras_diffusion.samplers import run_sampler
from keras_diffusion.schedules import LinearBetaSchedule

SCHEDULE = LinearBetaSchedule()


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _oracle(x0):
    """A network that knows the clean images: it returns the exact noise."""
    x0 = keras.ops.convert_to_tensor(x0)

    def model_fn(samples, t, context=None):
        signal = keras.ops.sqrt(SCHEDULE.alpha_bar(t))
        noise = keras.ops.sqrt(1.0 - SCHEDULE.alpha_bar(t))
        return (samples - signal * x0) / noise

    return model_fn


@pytest.mark.parametrize("num_steps", [1, 10, 50])
def test_ddim_with_oracle_recovers_x0(num_steps):
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-0.9, 0.9, size=(3, 6, 6, 1)).astype("float32")
    sampler = DDIMSampler(SCHEDULE, num_steps=num_steps, eta=0.0)
    step_fn = make_step_function(sampler, _oracle(x0), [], compile=True)
    noise = rng.normal(size=x0.shape).astype("float32")
    out = run_sampler(sampler, step_fn, noise, progress=False)
    np.testing.assert_allclose(out, x0, atol=2e-3)


def test_ddpm_with_oracle_recovers_x0():
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-0.9, 0.9, size=(2, 4, 4, 1)).astype("float32")
    sampler = DDPMSampler(SCHEDULE)
    step_fn = make_step_function(sampler, _oracle(x0), [], compile=True)
    noise = rng.normal(size=x0.shape).astype("float32")
    out = run_sampler(sampler, step_fn, noise, seed=3, progress=False)
    # The last step has zero variance and the oracle's x_0 is exact.
    np.testing.assert_allclose(out, x0, atol=2e-3)


def test_ddpm_posterior_matches_closed_form():
    """Eq. 6-7 of Ho et al.: mu = c0 x0 + ct xt, var = beta_tilde."""
    sampler = DDPMSampler(SCHEDULE)
    rng = np.random.default_rng(2)
    x0 = keras.ops.convert_to_tensor(rng.normal(size=(1, 2, 2, 1)).astype("float32"))
    xt = keras.ops.convert_to_tensor(rng.normal(size=(1, 2, 2, 1)).astype("float32"))
    betas = SCHEDULE.betas
    alpha_bars = np.cumprod(1 - betas)
    for t in (1, 500, 999):
        mean, variance = sampler.posterior_mean_variance(x0, xt, np.array(t))
        c0 = np.sqrt(alpha_bars[t - 1]) * betas[t] / (1 - alpha_bars[t])
        ct = np.sqrt(1 - betas[t]) * (1 - alpha_bars[t - 1]) / (1 - alpha_bars[t])
        beta_tilde = (1 - alpha_bars[t - 1]) / (1 - alpha_bars[t]) * betas[t]
        np.testing.assert_allclose(
            _np(mean), c0 * _np(x0) + ct * _np(xt), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(_np(variance), beta_tilde, rtol=1e-4)
    # The step to x_0 adds no noise.
    _, variance = sampler.posterior_mean_variance(x0, xt, np.array(0))
    assert float(_np(variance)) == pytest.approx(0.0, abs=1e-7)


def test_ddim_eta_one_single_step_matches_ddpm_posterior():
    ddim = DDIMSampler(SCHEDULE, num_steps=1000, eta=1.0, clip_sample=False)
    ddpm = DDPMSampler(SCHEDULE, clip_sample=False)
    rng = np.random.default_rng(3)
    xt = keras.ops.convert_to_tensor(rng.normal(size=(1, 3, 3, 1)).astype("float32"))
    noise = keras.ops.convert_to_tensor(rng.normal(size=xt.shape).astype("float32"))
    pred_noises = rng.normal(size=xt.shape).astype("float32")

    def model_fn(samples, t):
        return keras.ops.convert_to_tensor(pred_noises)

    t, t_prev = np.array(400), np.array(399)
    np.testing.assert_allclose(
        _np(ddim.step(model_fn, xt, t, t_prev, noise).samples),
        _np(ddpm.step(model_fn, xt, t, t_prev, noise).samples),
        rtol=1e-4, atol=1e-5,
    )


@pytest.mark.parametrize("make", [DDPMSampler, DDIMSampler, DPMSolverSampler])
def test_a_diffusion_step_returns_its_x0_estimate_and_the_noise(make):
    rng = np.random.default_rng(4)
    x0 = rng.uniform(-0.9, 0.9, size=(2, 5, 5, 1)).astype("float32")
    sampler = make(SCHEDULE, num_steps=10)
    t, t_prev = sampler.timesteps()[2]
    alpha_bar = SCHEDULE.alphas_cumprod[t]
    true_noise = rng.normal(size=x0.shape).astype("float32")
    xt = keras.ops.convert_to_tensor(
        (np.sqrt(alpha_bar) * x0 + np.sqrt(1 - alpha_bar) * true_noise)
        .astype("float32"))
    noise = keras.ops.convert_to_tensor(np.zeros_like(x0))
    state = (sampler.initial_state(xt),) if getattr(sampler, "multistep", False) else ()
    oracle = _oracle(x0)
    output = sampler.step(lambda x, timestep: oracle(x, timestep), xt,
                          np.int32(t), np.int32(t_prev), noise, *state)
    assert isinstance(output, SamplerOutput)
    np.testing.assert_allclose(_np(output.pred_images), x0, atol=1e-3)
    np.testing.assert_allclose(_np(output.model_output), true_noise, atol=1e-3)
    assert output.samples.shape == x0.shape


@pytest.mark.parametrize("make", [EulerSampler, HeunSampler])
def test_a_flow_step_returns_its_data_estimate_and_the_velocity(make):
    rng = np.random.default_rng(5)
    x0, x1 = rng.normal(size=(2, 3, 4, 4, 1)).astype("float32")
    velocity = keras.ops.convert_to_tensor(x1 - x0)  # straight paths
    sampler = make(4)
    t, t_next = sampler.timesteps()[1]
    xt = keras.ops.convert_to_tensor((1 - t) * x0 + t * x1)
    output = sampler.step(lambda x, time: velocity, xt, t, t_next)
    assert isinstance(output, SamplerOutput)
    np.testing.assert_allclose(_np(output.pred_images), x1, atol=1e-5)
    np.testing.assert_allclose(_np(output.model_output), x1 - x0, atol=1e-6)
    np.testing.assert_allclose(_np(output.samples), (1 - t_next) * x0 + t_next * x1,
                               atol=1e-5)


def test_timesteps_cover_schedule():
    pairs = DDIMSampler(SCHEDULE, num_steps=50).timesteps()
    assert len(pairs) == 50 and pairs[0][0] == 999 and pairs[-1] == (0, -1)
    assert all(t > t_prev for t, t_prev in pairs)
    assert len(DDPMSampler(SCHEDULE).timesteps()) == 1000


@pytest.mark.parametrize("steps", [0, -3, 1001])
def test_bad_step_counts(steps):
    with pytest.raises(ValueError, match="1 to 1000"):
        DDIMSampler(SCHEDULE, num_steps=steps)
    with pytest.raises(ValueError, match="1 to 1000"):
        DDPMSampler(SCHEDULE, num_steps=steps)


def test_negative_eta_is_rejected():
    with pytest.raises(ValueError, match="eta"):
        DDIMSampler(SCHEDULE, eta=-0.5)


@pytest.mark.parametrize("make", [DDPMSampler, DDIMSampler, DPMSolverSampler])
def test_pred_noise_scale_multiplies_the_noise_prediction(make):
    """A sampler with `pred_noise_scale = s` takes the step that the same
    sampler with 1 takes on a network whose predictions are `s` times as
    large, and its x_0 estimate removes that much more noise."""
    rng = np.random.default_rng(6)
    xt = keras.ops.convert_to_tensor(rng.normal(size=(2, 5, 5, 1)).astype("float32"))
    noise = keras.ops.convert_to_tensor(rng.normal(size=(2, 5, 5, 1)).astype("float32"))
    pred = keras.ops.convert_to_tensor(
        0.5 * rng.normal(size=(2, 5, 5, 1)).astype("float32"))
    scaled = make(SCHEDULE, num_steps=10, clip_sample=False, pred_noise_scale=1.25)
    plain = make(SCHEDULE, num_steps=10, clip_sample=False)
    t, t_prev = scaled.timesteps()[3]
    state = (scaled.initial_state(xt),) if getattr(scaled, "multistep", False) else ()
    got = scaled.step(lambda x, timestep: pred, xt, np.int32(t), np.int32(t_prev),
                      noise, *state)
    want = plain.step(lambda x, timestep: 1.25 * pred, xt, np.int32(t),
                      np.int32(t_prev), noise, *state)
    np.testing.assert_allclose(_np(got.samples), _np(want.samples), atol=1e-5)
    np.testing.assert_allclose(_np(got.model_output), 1.25 * _np(pred), atol=1e-6)
    alpha_bar = SCHEDULE.alphas_cumprod[t]
    np.testing.assert_allclose(
        _np(got.pred_images),
        (_np(xt) - np.sqrt(1 - alpha_bar) * 1.25 * _np(pred)) / np.sqrt(alpha_bar),
        rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), True])
def test_bad_pred_noise_scale_is_rejected(scale):
    for make in (DDPMSampler, DDIMSampler, DPMSolverSampler):
        with pytest.raises(ValueError, match="pred_noise_scale"):
            make(SCHEDULE, pred_noise_scale=scale)
