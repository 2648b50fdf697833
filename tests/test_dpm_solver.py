"""DPM-Solver++(2M) (`DPMSolverSampler`, `sampler="dpm"`)."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import randomize
from keras_diffusion.models import DDPM
from keras_diffusion.models import NoisyClassifier
from keras_diffusion.networks import TimeConditionedClassifier
from keras_diffusion.networks import UNet
from keras_diffusion.samplers import DDIMSampler
from keras_diffusion.samplers import DPMSolverSampler
from keras_diffusion.samplers import make_step_function
from keras_diffusion.samplers import run_sampler
from keras_diffusion.schedules import CosineSchedule
from keras_diffusion.schedules import LinearBetaSchedule
from keras_diffusion_cli.main import cli

SCHEDULE = LinearBetaSchedule()
# Gaussian data, one (mean, std) per dimension: a narrow, a unit and a wide
# distribution.
MEANS = np.array([0.5, 0.3, -0.2, 1.0])
STDS = np.array([0.1, 0.5, 1.0, 2.0])


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _gaussian_noise_fn(means=MEANS, stds=STDS):
    """The exact noise prediction for data x_0 ~ N(means, stds^2):
    with `x_t = a x_0 + n eps`, `E[eps | x_t] = n (x_t - a mu) / (a^2 s^2 + n^2)`.
    """
    means = keras.ops.convert_to_tensor(means.astype("float32"))
    variances = keras.ops.convert_to_tensor((stds**2).astype("float32"))

    def model_fn(samples, t, context=None):
        alpha_bar = SCHEDULE.alpha_bar(t)
        signal, noise = keras.ops.sqrt(alpha_bar), keras.ops.sqrt(1.0 - alpha_bar)
        return noise * (samples - signal * means) / (
            alpha_bar * variances + noise**2)

    return model_fn


def _gaussian_moments(sampler, num_samples=2000):
    """Mean and variance per dimension of the samples `sampler` draws with
    the exact noise prediction.

    They start from the exact marginal at the first timestep,
    `N(a mu, a^2 s^2 + n^2)`, so that the exact ODE ends at N(mu, s^2). The
    standard normal draws are standardized per dimension: every step is
    affine in the samples, so the moments of the output are then those of
    the sampler's map, without Monte Carlo error.
    """
    z = np.random.default_rng(0).standard_normal((num_samples, len(MEANS)))
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    alpha_bar = SCHEDULE.alphas_cumprod[sampler.timesteps()[0][0]]
    start = np.sqrt(alpha_bar) * MEANS + np.sqrt(
        alpha_bar * STDS**2 + 1.0 - alpha_bar) * z
    step_fn = make_step_function(sampler, _gaussian_noise_fn(), [])
    out = run_sampler(sampler, step_fn, start.astype("float32"), progress=False)
    out = out.astype("float64")
    return out.mean(axis=0), out.var(axis=0)


def _exact_variances(sampler):
    """The variances the sampler must give with exact ODE steps: the ODE
    keeps the marginals N(a mu, a^2 s^2 + n^2), and the last step returns
    `E[x_0 | x_t]` from its start, whose variance is
    `s^2 * a^2 s^2 / (a^2 s^2 + n^2)` there (about `s^2` for a start at
    `t = 0`, as DDIM's)."""
    alpha_bar = SCHEDULE.alphas_cumprod[sampler.timesteps()[-1][0]]
    return STDS**2 * alpha_bar * STDS**2 / (alpha_bar * STDS**2 + 1.0 - alpha_bar)


def _variance_error(sampler):
    """The largest relative error of a variance against `_exact_variances`."""
    _, variances = _gaussian_moments(sampler)
    return np.abs(variances / _exact_variances(sampler) - 1.0).max()


@pytest.mark.parametrize("num_steps", [10, 20])
def test_gaussian_data_mean_and_variance(num_steps):
    """The samples' mean and variance are the data's.

    The last step's jump from a little noise (see `DPMSolverSampler`)
    shrinks a component whose std is small against that noise (the two
    narrow dimensions here), so those are held to the closed form of
    `_exact_variances`; the unit-scale ones (std >= 1, like the models'
    scaled latents) to the data's variance itself.
    """
    sampler = DPMSolverSampler(SCHEDULE, num_steps=num_steps, clip_sample=False)
    means, variances = _gaussian_moments(sampler)
    np.testing.assert_allclose(means, MEANS, atol=1e-3)
    unit_scale = STDS >= 1
    np.testing.assert_allclose(variances[unit_scale], STDS[unit_scale] ** 2,
                               rtol=0.1)
    np.testing.assert_allclose(variances, _exact_variances(sampler), rtol=0.1)


def test_beats_ddim_at_equal_steps():
    for steps in (10, 20, 40):
        dpm = _variance_error(DPMSolverSampler(SCHEDULE, steps, clip_sample=False))
        ddim = _variance_error(DDIMSampler(SCHEDULE, steps, clip_sample=False))
        assert dpm < 0.2 * ddim, (steps, dpm, ddim)


class _LambdaUniformSampler(DPMSolverSampler):
    """Timesteps evenly spaced in lambda down to `t = 0` (equal steps `h`,
    where the order of the update shows)."""

    def timesteps(self):
        lambdas = self._lambdas()[1:]  # t = 0 .. T-1, decreasing
        targets = np.linspace(lambdas[-1], lambdas[0], self.num_steps)
        times = np.interp(targets, lambdas[::-1], np.arange(len(lambdas))[::-1])
        times = times.round().astype("int32")
        for index in range(self.num_steps - 2, -1, -1):  # distinct
            times[index] = max(times[index], times[index + 1] + 1)
        return list(zip(times, list(times[1:]) + [-1]))


def test_update_is_second_order():
    """Twice the steps, about a quarter of the error (first order: half)."""
    coarse = _variance_error(_LambdaUniformSampler(SCHEDULE, 20, clip_sample=False))
    fine = _variance_error(_LambdaUniformSampler(SCHEDULE, 40, clip_sample=False))
    assert fine < coarse / 3, (coarse, fine)


def test_first_step_is_ddim():
    sampler = DPMSolverSampler(SCHEDULE, num_steps=10, clip_sample=False)
    (t, t_prev), (t_second, _) = sampler.timesteps()[:2]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5)).astype("float32")
    pred_noises = rng.normal(size=x.shape).astype("float32")

    def model_fn(samples, timestep):
        return keras.ops.convert_to_tensor(pred_noises)

    next_samples, pred_images, model_output = sampler.step(
        model_fn, keras.ops.convert_to_tensor(x), t, t_prev, None,
        sampler.initial_state(keras.ops.convert_to_tensor(x)))
    np.testing.assert_allclose(_np(model_output), pred_noises)
    alpha_bar, alpha_bar_prev = SCHEDULE.alphas_cumprod[[t, t_prev]]
    x0 = (x - np.sqrt(1 - alpha_bar) * pred_noises) / np.sqrt(alpha_bar)
    ddim = np.sqrt(alpha_bar_prev) * x0 + np.sqrt(1 - alpha_bar_prev) * pred_noises
    np.testing.assert_allclose(_np(pred_images), x0, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_np(next_samples), ddim, rtol=1e-4, atol=1e-5)
    # The second step does use the previous prediction.
    other = sampler.step(model_fn, next_samples, t_second, t_prev, None,
                         keras.ops.zeros_like(pred_images)).samples
    again = sampler.step(model_fn, next_samples, t_second, t_prev, None,
                         pred_images).samples
    assert np.abs(_np(other) - _np(again)).max() > 1e-3


class _UnevenSampler(DPMSolverSampler):
    """Uneven steps in lambda, so that r is far from 1."""

    def timesteps(self):
        steps = [999, 700, 300, 100, 0]
        return list(zip(steps, steps[1:] + [-1]))


def _check_steps(sampler, next_samples, seed):
    """Runs `sampler`'s steps on fixed noise predictions (and fixed noise)
    beside a float64 reference and checks every step's samples and x_0
    estimate against it.

    `next_samples(x, x0, x0_last, h, h_last, rates, rates_prev, noise)` is
    the reference step to `t_prev >= 0` (`x0_last`, `h_last`: `None` on
    the first step; `rates`: `(alpha, sigma)` at `t`); the last step, to
    the clean data, returns the x_0 estimate.
    """
    pairs = sampler.timesteps()
    rng = np.random.default_rng(seed)
    pred_noises = {int(t): rng.normal(size=(2, 3)) for t, _ in pairs}
    noises = {int(t): rng.normal(size=(2, 3)) for t, _ in pairs}

    def model_fn(samples, timestep):
        return keras.ops.convert_to_tensor(
            pred_noises[int(_np(timestep))].astype("float32"))

    alpha_bars = np.concatenate([[1.0], SCHEDULE.alphas_cumprod])

    def rates(t):
        return np.sqrt(alpha_bars[t + 1]), np.sqrt(1.0 - alpha_bars[t + 1])

    def lam(t):
        alpha, sigma = rates(t)
        return np.log(alpha / sigma)

    x = rng.normal(size=(2, 3))
    samples = keras.ops.convert_to_tensor(x.astype("float32"))
    state = sampler.initial_state(samples)
    x0_last, h_last = None, None
    for t, t_prev in pairs:
        t, t_prev = int(t), int(t_prev)
        alpha, sigma = rates(t)
        x0 = (x - sigma * pred_noises[t]) / alpha
        if t_prev == -1:
            x = x0
        else:
            h = lam(t_prev) - lam(t)
            x = next_samples(x, x0, x0_last, h, h_last, rates(t), rates(t_prev),
                             noises[t])
            x0_last, h_last = x0, h
        noise = keras.ops.convert_to_tensor(noises[t].astype("float32"))
        samples, state, _ = sampler.step(model_fn, samples, np.int32(t),
                                         np.int32(t_prev), noise, state)
        np.testing.assert_allclose(_np(state), x0, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(_np(samples), x, rtol=1e-4, atol=1e-4)


def test_steps_match_algorithm_2_of_the_paper():
    """Each step against DPM-Solver++(2M) as Lu et al. (2022) write it, in
    float64: `D_i = (1 + 1 / (2 r_i)) x0_{i-1} - 1 / (2 r_i) x0_{i-2}`."""

    def next_samples(x, x0, x0_last, h, h_last, rates, rates_prev, noise):
        (_, sigma), (alpha_prev, sigma_prev) = rates, rates_prev
        d = x0
        if x0_last is not None:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_last
        return sigma_prev / sigma * x - alpha_prev * np.expm1(-h) * d

    _check_steps(_UnevenSampler(SCHEDULE, num_steps=5, clip_sample=False),
                 next_samples, seed=4)


def test_clip_sample_keeps_the_estimates_in_range():
    rng = np.random.default_rng(2)
    x0 = rng.uniform(-3, 3, size=(4, 6)).astype("float32")
    x0_tensor = keras.ops.convert_to_tensor(x0)

    def oracle(samples, t, context=None):
        alpha_bar = SCHEDULE.alpha_bar(t)
        return (samples - keras.ops.sqrt(alpha_bar) * x0_tensor) / keras.ops.sqrt(
            1.0 - alpha_bar)

    noise = rng.normal(size=x0.shape).astype("float32")
    for clip_sample in (True, False):
        sampler = DPMSolverSampler(SCHEDULE, num_steps=10, clip_sample=clip_sample)
        step_fn = make_step_function(sampler, oracle, [])
        out = run_sampler(sampler, step_fn, noise, progress=False)
        # The last step returns the (clipped) x_0 estimate; the oracle's
        # unclipped estimate is exact.
        expected = np.clip(x0, -1, 1) if clip_sample else x0
        np.testing.assert_allclose(out, expected, atol=2e-3)


@pytest.mark.parametrize("num_steps", [1, 2, 10, 1000])
def test_timesteps(num_steps):
    pairs = DPMSolverSampler(SCHEDULE, num_steps).timesteps()
    assert len(pairs) == num_steps and pairs[0][0] == 999 and pairs[-1][1] == -1
    assert all(t > t_prev for t, t_prev in pairs)
    assert all(pairs[i][1] == pairs[i + 1][0] for i in range(num_steps - 1))
    # The last start is half a step above 0.
    assert pairs[-1][0] == round(999 / (2 * num_steps - 1))


@pytest.mark.parametrize("num_steps", [10, 1000])
def test_timesteps_keep_the_noise_levels_on_another_schedule(num_steps):
    linear = DPMSolverSampler(SCHEDULE, num_steps).timesteps()
    cosine_schedule = CosineSchedule()
    cosine = DPMSolverSampler(cosine_schedule, num_steps).timesteps()
    assert len(cosine) == num_steps and cosine[-1][1] == -1
    assert all(t > t_prev for t, t_prev in cosine)
    assert all(cosine[i][1] == cosine[i + 1][0] for i in range(num_steps - 1))
    if num_steps == 10:
        # Each start is the cosine timestep whose alpha_bar is nearest the
        # linear schedule's at that start, not the same `t`.
        assert [t for t, _ in cosine] != [t for t, _ in linear]
        for (linear_t, _), (cosine_t, _) in zip(linear, cosine):
            gaps = np.abs(cosine_schedule.alphas_cumprod
                          - SCHEDULE.alphas_cumprod[linear_t])
            assert gaps[cosine_t] == gaps.min()


def test_defaults_and_bad_arguments():
    model = DDPM(UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                      num_heads=1))
    sampler = model.make_sampler("dpm")
    assert isinstance(sampler, DPMSolverSampler) and sampler.num_steps == 10
    assert sampler.clip_sample and not sampler.needs_noise
    for steps in (0, 1001):
        with pytest.raises(ValueError, match="1 to 1000"):
            DPMSolverSampler(SCHEDULE, num_steps=steps)
    with pytest.raises(ValueError, match="eta"):
        model.make_sampler("dpm", 10, eta=0.5)


def _tiny_ddpm(**unet_kwargs):
    network = UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                   num_heads=1, **unet_kwargs)
    randomize(network)
    return DDPM(network, seed=3)


def test_generate_is_seeded_batched_and_compiled_like_eager():
    model = _tiny_ddpm()
    kwargs = dict(sampler="dpm", num_steps=4, progress=False)
    first = model.generate(3, seed=7, **kwargs)
    assert first.shape == (3, 28, 28, 1)
    assert first.min() >= 0 and first.max() <= 1
    np.testing.assert_array_equal(model.generate(3, seed=7, **kwargs), first)
    assert np.abs(model.generate(3, seed=8, **kwargs) - first).max() > 1e-3
    np.testing.assert_allclose(model.generate(3, seed=7, batch_size=2, **kwargs),
                               first, atol=1e-4)
    np.testing.assert_allclose(model.generate(3, seed=7, compile=False, **kwargs),
                               first, atol=1e-3)
    # The trajectory: one x_0 estimate per step; the last is the result.
    images, frames = model.generate(3, seed=7, return_trajectory=True, **kwargs)
    assert frames.shape == (4, 3, 28, 28, 1)
    np.testing.assert_allclose(images, first, atol=1e-5)
    np.testing.assert_allclose(frames[-1], first, atol=1e-5)


def test_generate_with_classifier_free_guidance():
    model = _tiny_ddpm(num_classes=10)
    kwargs = dict(sampler="dpm", num_steps=4, seed=2, progress=False)
    labels = [1, 5]
    guided = model.generate(2, labels=labels, guidance=3.0, **kwargs)
    np.testing.assert_array_equal(
        model.generate(2, labels=labels, guidance=3.0, **kwargs), guided)
    # Guidance 0 is the unconditional (null class) prediction.
    np.testing.assert_allclose(model.generate(2, labels=labels, guidance=0.0,
                                              **kwargs),
                               model.generate(2, **kwargs), atol=1e-4)
    assert np.abs(model.generate(2, labels=labels, guidance=1.0, **kwargs)
                  - guided).max() > 1e-3


def test_generate_with_classifier_guidance():
    model = _tiny_ddpm()
    classifier = NoisyClassifier(
        TimeConditionedClassifier(widths=(8, 16), embedding_dim=16), seed=1)
    randomize(classifier.network, scale=0.1)
    kwargs = dict(sampler="dpm", num_steps=3, seed=5, progress=False)
    guide = dict(labels=[1, 2], classifier=classifier)
    unguided = model.generate(2, **kwargs)
    np.testing.assert_array_equal(
        model.generate(2, classifier_scale=0.0, **kwargs, **guide), unguided)
    guided = model.generate(2, classifier_scale=30.0, **kwargs, **guide)
    assert np.abs(guided - unguided).max() > 1e-3


def test_kd_sample_with_dpm(tmp_path):
    path = str(tmp_path / "ddpm.keras")
    _tiny_ddpm().save(path)
    out = tmp_path / "s.npz"
    result = CliRunner().invoke(cli, ["sample", "--model", path, "--sampler", "dpm",
                                      "--steps", "3", "--num", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert np.load(out)["images"].shape == (2, 28, 28, 1)
    result = CliRunner().invoke(cli, ["sample", "--model", path, "--sampler", "dpm",
                                      "--eta", "0.5", "--out", str(out)])
    assert result.exit_code == 2 and "eta" in result.output, result.output


def test_default_sampler_is_dpm_sde_unconditional_dpm_conditional():
    model = _tiny_ddpm()
    kwargs = dict(num_steps=3, seed=2, progress=False)
    np.testing.assert_array_equal(model.generate(2, **kwargs),
                                  model.generate(2, sampler="dpm-sde", **kwargs))
    assert not np.array_equal(model.generate(2, **kwargs),
                              model.generate(2, sampler="dpm", **kwargs))
    with pytest.raises(ValueError, match="choose the ddim sampler"):
        model.generate(2, eta=0.5, **kwargs)
    conditional = _tiny_ddpm(num_classes=3)
    assert conditional.default_sampler == "dpm"
    np.testing.assert_array_equal(
        conditional.generate(2, labels=[0, 1], **kwargs),
        conditional.generate(2, labels=[0, 1], sampler="dpm", **kwargs))


def _sde_moments(sampler, num_samples=20000):
    """Mean and variance per dimension of `sampler`'s samples of the
    Gaussian data, started from the exact marginal at the first timestep
    (Monte Carlo: the SDE adds fresh noise every step)."""
    z = np.random.default_rng(5).standard_normal((num_samples, len(MEANS)))
    alpha_bar = SCHEDULE.alphas_cumprod[sampler.timesteps()[0][0]]
    start = np.sqrt(alpha_bar) * MEANS + np.sqrt(
        alpha_bar * STDS**2 + 1.0 - alpha_bar) * z
    step_fn = make_step_function(sampler, _gaussian_noise_fn(), [])
    out = run_sampler(sampler, step_fn, start.astype("float32"), seed=6,
                      progress=False).astype("float64")
    return out.mean(axis=0), out.var(axis=0)


@pytest.mark.parametrize("num_steps, rtol", [(40, 0.25), (200, 0.1)])
def test_sde_gaussian_data_mean_and_variance(num_steps, rtol):
    """The reverse SDE keeps the same marginals as the ODE, so with the
    exact noise prediction its samples converge to the closed-form
    moments of `_exact_variances` too (20,000 samples put a variance's
    Monte Carlo error near 1%). Its discretization error is larger than
    the ODE solver's: variances 10-20% off at 10 to 40 steps."""
    sampler = DPMSolverSampler(SCHEDULE, num_steps=num_steps, clip_sample=False,
                               stochastic=True)
    means, variances = _sde_moments(sampler)
    errors = np.abs(means - MEANS)
    assert (errors < 4 * STDS / np.sqrt(20000) + 2e-3).all(), (means, MEANS)
    np.testing.assert_allclose(variances, _exact_variances(sampler), rtol=rtol)


def test_sde_steps_match_the_formula():
    """Each stochastic step against SDE-DPM-Solver++(2M) in float64 (Lu et
    al., 2023; diffusers' "sde-dpmsolver++"), on uneven steps:
    `x' = (sigma' / sigma) e^-h x + alpha' (1 - e^-2h) (D0 + D1 / 2)
    + sigma' sqrt(1 - e^-2h) z`."""

    def next_samples(x, x0, x0_last, h, h_last, rates, rates_prev, noise):
        (_, sigma), (alpha_prev, sigma_prev) = rates, rates_prev
        d1 = 0.0 if x0_last is None else (x0 - x0_last) * h / h_last
        return (sigma_prev / sigma * np.exp(-h) * x
                + alpha_prev * (1 - np.exp(-2 * h)) * (x0 + 0.5 * d1)
                + sigma_prev * np.sqrt(1 - np.exp(-2 * h)) * noise)

    sampler = _UnevenSampler(SCHEDULE, num_steps=5, clip_sample=False,
                             stochastic=True)
    assert sampler.needs_noise
    _check_steps(sampler, next_samples, seed=7)


def test_sde_sampler_from_the_model():
    model = _tiny_ddpm()
    sampler = model.make_sampler("dpm-sde")
    assert isinstance(sampler, DPMSolverSampler) and sampler.stochastic
    assert sampler.needs_noise and sampler.num_steps == 10
    with pytest.raises(ValueError, match="eta"):
        model.make_sampler("dpm-sde", 10, eta=0.5)
    first = model.generate(3, sampler="dpm-sde", num_steps=4, seed=0, progress=False)
    again = model.generate(3, sampler="dpm-sde", num_steps=4, seed=0, progress=False)
    ode = model.generate(3, sampler="dpm", num_steps=4, seed=0, progress=False)
    np.testing.assert_allclose(first, again)
    assert np.abs(first - ode).max() > 1e-3
