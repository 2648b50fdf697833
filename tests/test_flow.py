"""Rectified flow, its Euler and Heun samplers, reflow pairs and `kd` commands."""

import json
import os

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import randomize
from keras_diffusion.app import reflow_pairs as reflow
from keras_diffusion.metrics import straightness
from keras_diffusion.models import DDPM
from keras_diffusion.models import LatentRectifiedFlow
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.models import rectified_flow
from keras_diffusion.models import VAE
from keras_diffusion.networks import UNet
from keras_diffusion.networks import VAEDecoder
from keras_diffusion.networks import VAEEncoder
from keras_diffusion.samplers import EulerSampler
from keras_diffusion.samplers import HeunSampler
from keras_diffusion.samplers import make_step_function
from keras_diffusion.samplers import run_sampler
from keras_diffusion_cli.main import cli


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _tiny_unet(image_shape=(28, 28, 1), **kwargs):
    return UNet(image_shape, widths=(8,), attention_levels=(), embedding_dim=16,
                num_heads=1, **kwargs)


def _tiny_flow(seed=0, **kwargs):
    """An unconditional pixel flow whose random weights give a nonzero field."""
    network = _tiny_unet(**kwargs)
    randomize(network, seed=seed)
    return RectifiedFlow(network, seed=seed)


def _field_network(field, shape=(2, 2, 1)):
    """A network whose velocity is `field(samples, times)`, for exact checks."""
    samples = keras.Input(shape, name="noisy_images")
    times = keras.Input((), name="times")
    velocity = keras.layers.Lambda(lambda inputs: field(*inputs))([samples, times])
    return keras.Model({"noisy_images": samples, "times": times}, velocity)


def _integrate(sampler, model_fn, start):
    step_fn = make_step_function(sampler, lambda x, t, context: model_fn(x, t), [],
                                 compile=True)
    return run_sampler(sampler, step_fn, start, progress=False)


# The flow's definitions -----------------------------------------------------


def test_interpolation_and_velocity_target_by_hand():
    noise = np.array([0.0, 2.0, -1.0], "float32").reshape(3, 1, 1, 1)
    images = np.array([1.0, -2.0, 0.5], "float32").reshape(3, 1, 1, 1)
    times = np.array([0.25, 0.5, 1.0], "float32")
    x_t = _np(RectifiedFlow.interpolate(noise, images, times)).ravel()
    # 0.25 * 1 + 0.75 * 0;  0.5 * -2 + 0.5 * 2;  1 * 0.5 + 0 * -1
    np.testing.assert_allclose(x_t, [0.25, 0.0, 0.5], atol=1e-7)
    target = _np(RectifiedFlow.velocity_target(noise, images)).ravel()
    np.testing.assert_allclose(target, [1.0, -4.0, 1.5], atol=1e-7)
    # At t = 0 the point is the noise.
    start = RectifiedFlow.interpolate(noise, images, np.zeros(3, "float32"))
    np.testing.assert_allclose(_np(start), noise)


def test_loss_of_a_zero_network_is_the_target_energy():
    # A new UNet's output convolution is zero, so the loss on given pairs is
    # mean((x1 - x0)^2) whatever times are drawn.
    model = RectifiedFlow(_tiny_unet((4, 4, 1)), seed=0)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(5, 4, 4, 1)).astype("float32")
    images = rng.uniform(-1, 1, size=(5, 4, 4, 1)).astype("float32")
    loss = _np(model.compute_loss({"noise": noise, "images": images}))
    assert float(loss) == pytest.approx(np.mean((images - noise) ** 2), rel=1e-5)


def test_pseudo_huber_velocity_loss_by_hand():
    # Per sample sqrt(|e|^2 + c^2) - c over its d numbers, divided by d, with
    # c = 0.00054 d; then the batch mean.
    model = RectifiedFlow(_tiny_unet((4, 4, 1)), velocity_loss="pseudo_huber")
    errors = np.zeros((3, 2, 2, 1), "float32")
    errors[0] = 1.0  # |e|^2 = 4
    errors[1, 0, 0, 0] = 0.001  # |e| << c: about |e|^2 / (2 c)
    c = 0.00054 * 4
    expected = [np.sqrt(4 + c**2) - c, np.sqrt(1e-6 + c**2) - c, 0.0]
    loss = float(_np(model.velocity_distance(errors)))
    assert loss == pytest.approx(np.mean(expected) / 4, rel=1e-4)
    assert expected[1] == pytest.approx(1e-6 / (2 * c), rel=0.1)
    # Far beyond c it grows like the norm, not the square: doubling every
    # error doubles the loss, where the mean squared error quadruples.
    large = np.full((2, 2, 2, 1), 3.0, "float32")
    assert float(_np(model.velocity_distance(2 * large))) / float(
        _np(model.velocity_distance(large))) == pytest.approx(2.0, rel=1e-3)
    mse = RectifiedFlow(_tiny_unet((4, 4, 1)))
    assert float(_np(mse.velocity_distance(errors))) == pytest.approx(
        np.mean(errors ** 2))
    with pytest.raises(ValueError, match="velocity_loss"):
        RectifiedFlow(_tiny_unet(), velocity_loss="l1")


def test_time_sampling():
    uniform = _np(RectifiedFlow(_tiny_unet(), seed=1).sample_times(20000))
    assert 0 <= uniform.min() and uniform.max() <= 1
    assert abs(uniform.mean() - 0.5) < 0.01 and abs(uniform.std() - 0.2887) < 0.01
    model = RectifiedFlow(_tiny_unet(), time_sampling="logit_normal", seed=1)
    logit_normal = _np(model.sample_times(20000))
    logits = np.log(logit_normal / (1 - logit_normal))
    assert abs(logits.mean()) < 0.03 and abs(logits.std() - 1.0) < 0.03
    with pytest.raises(ValueError, match="time_sampling"):
        RectifiedFlow(_tiny_unet(), time_sampling="beta")


def test_u_shaped_time_sampling_follows_its_density():
    # Density cosh(a (t - 1/2)) on [0, 1]: the bins' shares are differences
    # of its CDF, (sinh(a (t - 1/2)) + sinh(a / 2)) / (2 sinh(a / 2)).
    times = _np(RectifiedFlow(_tiny_unet(), time_sampling="u_shaped",
                              seed=1).sample_times(40000))
    assert 0 <= times.min() and times.max() <= 1
    edges = np.linspace(0, 1, 6)
    steepness = rectified_flow.U_SHAPE_STEEPNESS
    cdf = (np.sinh(steepness * (edges - 0.5)) + np.sinh(steepness / 2)) / (
        2 * np.sinh(steepness / 2))
    shares = np.histogram(times, bins=edges)[0] / len(times)
    np.testing.assert_allclose(shares, np.diff(cdf), atol=0.01)
    assert shares[0] > 2 * shares[2] and shares[-1] > 2 * shares[2]  # uniform: 1


def test_zero_time_share_puts_that_share_at_t_0_and_keeps_the_rest():
    model = RectifiedFlow(_tiny_unet(), time_sampling="u_shaped",
                          zero_time_share=0.25, seed=1)
    times = _np(model.sample_times(40000))
    zeros = times == 0.0
    assert abs(zeros.mean() - 0.25) < 0.01
    # The rest still follow the U-shaped density: as often in the first
    # fifth as in the last, and more than twice as often as in the middle.
    shares = np.histogram(times[~zeros], bins=np.linspace(0, 1, 6))[0]
    assert abs(shares[0] - shares[-1]) < 0.05 * shares[0]
    assert shares[0] > 2 * shares[2]
    assert RectifiedFlow.from_config(model.get_config()).zero_time_share == 0.25
    assert not (_np(RectifiedFlow(_tiny_unet(), seed=1).sample_times(1000))
                == 0.0).any()
    for share in (-0.1, 1.5, True, "half"):
        with pytest.raises(ValueError, match="zero_time_share"):
            RectifiedFlow(_tiny_unet(), zero_time_share=share)


@pytest.mark.parametrize("x, match", [
    ({"images": np.zeros((2, 4, 4, 1))}, "'noise' and 'images'"),
    ({"noise": np.zeros((2, 4, 4, 1)), "images": np.zeros((2, 4, 4, 1)),
      "extra": np.zeros(2)}, "'noise' and 'images'"),
    ({"noise": np.zeros((2, 4, 4, 2)), "images": np.zeros((2, 4, 4, 1))},
     "noise shaped like"),
])
def test_bad_pairs_are_explained(x, match):
    model = RectifiedFlow(_tiny_unet((4, 4, 1)))
    with pytest.raises(ValueError, match=match):
        model.compute_loss(x)


# Samplers ---------------------------------------------------------------------


def test_timesteps_and_defaults():
    assert EulerSampler(4).timesteps() == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75),
                                           (0.75, 1.0)]
    assert EulerSampler().num_steps == 16 and HeunSampler().num_steps == 8
    assert not EulerSampler.needs_noise and not HeunSampler.needs_noise
    for bad in (0, -1, 2.5, True, "x"):
        with pytest.raises(ValueError, match="num_steps"):
            EulerSampler(bad)


def test_shifted_time_grid():
    # Esser et al. (2024) eq. 23 on the noise level sigma = 1 - t.
    for shift in (0.5, 1.0, 3.0):
        edges = [t for t, _ in EulerSampler(6, shift=shift).timesteps()] + [1.0]
        sigmas = 1 - np.linspace(0, 1, 7)
        np.testing.assert_allclose(
            edges, 1 - shift * sigmas / (1 + (shift - 1) * sigmas), atol=1e-12)
    assert EulerSampler(2, shift=3.0).timesteps() == [(0.0, 0.25), (0.25, 1.0)]
    steps = np.diff([t for t, _ in HeunSampler(8, shift=3).timesteps()] + [1.0])
    assert (np.diff(steps) > 0).all()  # short near the noise, long near the data
    for bad in (0, -1.0, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ValueError, match="shift"):
            EulerSampler(4, shift=bad)


def test_sampling_shift_sets_the_grid_and_is_saved():
    model = RectifiedFlow(_tiny_unet())
    assert model.make_sampler("heun", 4).shift == model.sampling_shift == 3.0
    shifted = RectifiedFlow.from_config(
        {**model.get_config(), "sampling_shift": 1.5})
    assert shifted.make_sampler("euler", 4).timesteps() == EulerSampler(
        4, shift=1.5).timesteps()
    with pytest.raises(ValueError, match="sampling_shift"):
        RectifiedFlow(_tiny_unet(), sampling_shift=0)


@pytest.mark.parametrize("sampler", [EulerSampler(1), HeunSampler(1), HeunSampler(3),
                                     EulerSampler(3, shift=3.0),
                                     HeunSampler(3, shift=0.5)])
def test_straight_field_reaches_the_target(sampler):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(3, 4, 4, 1)).astype("float32")
    x1 = rng.uniform(-1, 1, size=x0.shape).astype("float32")
    velocity = keras.ops.convert_to_tensor(x1 - x0)  # constant along each line
    out = _integrate(sampler, lambda x, t: velocity, x0)
    np.testing.assert_allclose(out, x1, atol=1e-5)


def test_euler_follows_the_pairs_field_in_any_step_count():
    # For fixed pairs the field that points at x1 is (x1 - x) / (1 - t);
    # Euler never evaluates it at t = 1 and lands on x1.
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(2, 3, 3, 1)).astype("float32")
    x1 = keras.ops.convert_to_tensor(rng.uniform(-1, 1, size=x0.shape).astype("float32"))
    out = _integrate(EulerSampler(5), lambda x, t: (x1 - x) / (1.0 - t), x0)
    np.testing.assert_allclose(out, _np(x1), atol=1e-5)


def test_heun_is_second_order():
    # dx/dt = x: Euler multiplies by (1 + h) per step, Heun by
    # (1 + h + h^2 / 2) but by (1 + h) on its last, uncorrected step; the
    # exact answer is e * x0. Halving h quarters Heun's error.
    x0 = np.ones((1, 1, 1, 1), "float32")
    euler = _integrate(EulerSampler(10), lambda x, t: x, x0).item()
    heun = _integrate(HeunSampler(10), lambda x, t: x, x0).item()
    assert euler == pytest.approx(1.1**10, rel=1e-5)
    assert heun == pytest.approx((1 + 0.1 + 0.005) ** 9 * 1.1, rel=1e-5)
    finer = _integrate(HeunSampler(20), lambda x, t: x, x0).item()
    assert 3.5 < (np.e - heun) / (np.e - finer) < 4.5
    assert abs(heun - np.e) < abs(euler - np.e) / 5


def test_heun_never_evaluates_the_data_end():
    # A field that is garbage at t = 1 (as a logit-normal flow's nearly is).
    x0 = np.zeros((2, 2, 2, 1), "float32")

    def field(x, t):
        return keras.ops.ones_like(x) * keras.ops.where(t < 1.0, 1.0, 1e6)

    out = _integrate(HeunSampler(4), field, x0)
    np.testing.assert_allclose(out, np.ones_like(x0), atol=1e-5)


# Reflow -----------------------------------------------------------------------


def test_straightness_by_hand():
    noise = np.random.default_rng(2).normal(size=(3, 2, 2, 1)).astype("float32")
    straight = RectifiedFlow(_field_network(lambda x, t: keras.ops.ones_like(x)))
    assert straightness(straight, noise, num_steps=4) == pytest.approx(
        0.0, abs=1e-10)
    curved = RectifiedFlow(_field_network(lambda x, t: x))
    # v_k = x0 (1 + h)^k and x_1 - x_0 = x0 ((1 + h)^N - 1).
    steps, h = 4, 0.25
    growth = (1 + h) ** np.arange(steps)
    expected = np.mean(noise.astype("float64") ** 2) * np.mean(
        (growth - ((1 + h) ** steps - 1)) ** 2)
    assert straightness(curved, noise, num_steps=steps, batch_size=2) == (
        pytest.approx(expected, rel=1e-4))


def _draw(flow, path, **kwargs):
    settings = dict(num_pairs=10, seed=3, batch_size=4, num_steps=3, progress=False)
    settings.update(kwargs)
    return reflow.generate_pairs(flow, path=str(path), **settings)


def test_pairs_file_is_deterministic_and_resumes(tmp_path, monkeypatch):
    flow = _tiny_flow()
    first = reflow.load_pairs(_draw(flow, tmp_path / "a.npz"))
    assert sorted(first) == ["images", "noise"]
    assert first["noise"].shape == first["images"].shape == (10, 28, 28, 1)
    assert first["noise"].dtype == first["images"].dtype == np.float32
    np.testing.assert_array_equal(first["noise"][4:8],
                                  reflow.chunk_noise(3, 1, 4, (28, 28, 1)))
    expected = flow.sample_from_noise(first["noise"][:4], "euler", 3,
                                      progress=False)
    np.testing.assert_allclose(first["images"][:4], expected, atol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["a.npz"]  # no .partial, no temp

    # A crash while drawing chunk 2 keeps chunks 0 and 1.
    draw_chunk, drawn, crash = reflow._draw_chunk, [], [True]

    class Crash(Exception):
        pass

    def crashing(flow, seed, index, *args):
        drawn.append(index)
        if index == 2 and crash:
            crash.clear()
            raise Crash
        return draw_chunk(flow, seed, index, *args)

    monkeypatch.setattr(reflow, "_draw_chunk", crashing)
    path = tmp_path / "b.npz"
    with pytest.raises(Crash):
        _draw(flow, path)
    partial = tmp_path / "b.npz.partial"
    assert sorted(os.listdir(partial)) == ["chunk_00000.npz", "chunk_00001.npz",
                                           "settings.json"]
    with pytest.raises(ValueError, match="seed differ"):
        _draw(flow, path, seed=4)
    with pytest.raises(ValueError, match="sampler differ"):
        _draw(flow, path, sampler="heun")
    os.remove(partial / "chunk_00000.npz")
    drawn.clear()
    _draw(flow, path)
    assert drawn == [0, 2]  # chunk 1 was reused
    second = reflow.load_pairs(path)
    for key in first:
        np.testing.assert_array_equal(second[key], first[key])
    assert not partial.exists()
    with pytest.raises(ValueError, match="already holds 10 pairs"):
        _draw(flow, path, num_pairs=12)


def test_heun_pairs_are_the_flows_heun_samples(tmp_path):
    flow = _tiny_flow()
    pairs = reflow.load_pairs(_draw(flow, tmp_path / "h.npz", sampler="heun"))
    expected = flow.sample_from_noise(pairs["noise"], "heun", 3, progress=False)
    np.testing.assert_allclose(pairs["images"], expected, atol=1e-5)
    euler = reflow.load_pairs(_draw(flow, tmp_path / "e.npz"))
    np.testing.assert_array_equal(pairs["noise"], euler["noise"])
    assert np.abs(pairs["images"] - euler["images"]).max() > 1e-4


def test_generate_pairs_rejects_bad_arguments(tmp_path):
    flow = _tiny_flow()
    for kwargs, match in [({"num_pairs": 0}, "num_pairs"), ({"seed": -1}, "seed"),
                          ({"num_steps": 0}, "num_steps"),
                          ({"guidance": 2.0}, "class-conditional"),
                          ({"sampler": "ddim"}, "euler, heun")]:
        with pytest.raises(ValueError, match=match):
            _draw(flow, tmp_path / "p.npz", **kwargs)
    with pytest.raises(ValueError, match=".npz"):
        _draw(flow, tmp_path / "p.txt")
    with pytest.raises(ValueError, match="RectifiedFlow"):
        _draw(DDPM(_tiny_unet()), tmp_path / "p.npz")
    assert not list(tmp_path.iterdir())


# Training, guidance, latent flows, saving ---------------------------------------


def test_conditional_flow_fit_guidance_and_pairs(mnist_batch, tmp_path):
    images, labels = mnist_batch
    network = _tiny_unet(num_classes=10, class_input_channel=True,
                         class_cross_attention=False)
    randomize(network)
    model = RectifiedFlow(network, seed=3)
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    t, w, classes = np.float32(0.4), 3.0, np.array([2, 7])
    cond = _np(model.predict_velocity(x, t, classes))
    uncond = _np(model.predict_velocity(x, t))
    np.testing.assert_allclose(_np(model.guided_velocity(x, t, classes, w)),
                               uncond + w * (cond - uncond), atol=1e-4)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, use_ema=True))
    history = model.fit(images[:64], labels[:64], batch_size=32, epochs=2,
                        verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[-1] < history[0]
    kwargs = dict(num_steps=3, labels=[0, 1, 2, 3], progress=False)
    out = model.generate(4, guidance=2.0, **kwargs)
    assert out.shape == (4, 28, 28, 1) and 0 <= out.min() and out.max() <= 1
    np.testing.assert_array_equal(out, model.generate(4, guidance=2.0, **kwargs))
    other = model.generate(4, guidance=5.0, **kwargs)
    assert np.abs(out - other).max() > 1e-4  # the weight reaches the compiled step
    pairs = reflow.load_pairs(reflow.generate_pairs(
        model, 4, str(tmp_path / "pairs.npz"), num_steps=3, progress=False))
    assert pairs["labels"].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(  # each pair is drawn with its class
        pairs["images"], model.sample_from_noise(pairs["noise"], "euler", 3,
                                                 labels=[0, 1, 2, 3],
                                                 progress=False), atol=1e-5)
    with pytest.raises(ValueError, match="class-conditional"):
        RectifiedFlow(network).compute_loss(images[:2])


def _vae():
    return VAE(VAEEncoder(latent_channels=2, widths=(8, 16, 16)),
               VAEDecoder((7, 7, 2), widths=(16, 16, 8)), kl_weight=0.01, seed=0)


def test_latent_flow_fit_and_reflow_pairs(mnist_batch, tmp_path):
    images, _ = mnist_batch
    vae = _vae()
    scale = LatentRectifiedFlow.compute_latent_scale(vae, images[:64])
    network = UNet((7, 7, 2), widths=(16,), attention_levels=(0,), embedding_dim=32,
                   num_heads=1)
    model = LatentRectifiedFlow(network, vae, scale, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, use_ema=True))
    frozen = {id(v) for v in vae.weights}
    history = model.fit(images[:64], batch_size=32, epochs=2, verbose=0)
    loss = history.history["loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0]
    assert not any(id(v) in frozen for v in model.trainable_variables)

    # Reflow pairs of a latent flow are scaled latents; Flow-2 trains on them.
    path = reflow.generate_pairs(model, 16, str(tmp_path / "pairs.npz"),
                                 batch_size=8, num_steps=4, progress=False)
    pairs = reflow.load_pairs(path)
    assert pairs["noise"].shape == pairs["images"].shape == (16, 7, 7, 2)
    flow2 = reflow.copy_flow(model, seed=1, name="reflow")
    assert isinstance(flow2, LatentRectifiedFlow) and flow2.latent_scale == scale
    assert flow2.time_sampling == model.time_sampling
    other = reflow.copy_flow(model, time_sampling="logit_normal",
                             velocity_loss="pseudo_huber")
    assert (other.time_sampling, other.velocity_loss) == ("logit_normal",
                                                          "pseudo_huber")
    for part in ("network", "vae"):
        for a, b in zip(getattr(flow2, part).get_weights(),
                        getattr(model, part).get_weights()):
            np.testing.assert_array_equal(a, b)
    # A dict batch is not encoded again (the pixel reflow fit is in the CLI test).
    assert np.isfinite(_np(flow2.compute_loss({key: pairs[key][:4] for key in pairs})))

    out = model.generate(3, sampler="euler", num_steps=4, progress=False)
    assert out.shape == (3, 28, 28, 1) and 0 <= out.min() and out.max() <= 1
    # `copy_flow` went through get_config / from_config; `.keras` files find
    # the class by its registered name (the pixel flow's file round trip is
    # tested below).
    assert keras.saving.get_registered_object(
        "keras_diffusion>LatentRectifiedFlow") is LatentRectifiedFlow


def test_pixel_flow_save_roundtrip_and_sampler_errors(tmp_path):
    model = RectifiedFlow(_tiny_flow().network, time_sampling="logit_normal",
                          seed=4, cond_drop_prob=0.2, sampling_shift=2.0,
                          velocity_loss="pseudo_huber")
    path = str(tmp_path / "rf.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RectifiedFlow)
    assert (loaded.time_sampling, loaded.seed, loaded.cond_drop_prob,
            loaded.sampling_shift, loaded.velocity_loss) == (
        "logit_normal", 4, 0.2, 2.0, "pseudo_huber")
    for sampler in ("euler", "heun"):
        kwargs = dict(num_images=2, sampler=sampler, num_steps=3, progress=False)
        np.testing.assert_allclose(loaded.generate(**kwargs),
                                   model.generate(**kwargs), atol=1e-5)
    with pytest.raises(ValueError, match="euler, heun"):
        model.generate(2, sampler="ddim", progress=False)
    with pytest.raises(ValueError, match="eta"):
        model.generate(2, eta=0.5, progress=False)
    with pytest.raises(ValueError, match="pred_noise_scale"):
        model.generate(2, pred_noise_scale=1.04, progress=False)
    with pytest.raises(ValueError, match="ddpm, ddim"):
        DDPM(_tiny_unet()).generate(2, sampler="euler", progress=False)


def test_flow_recipes():
    from keras_diffusion.app.recipes import RECIPES
    from keras_diffusion.app.recipes import build_model

    assert RECIPES["rf-pixel"].network == RECIPES["ddpm"].network
    assert RECIPES["rf-latent"].network == RECIPES["ldm"].network
    assert RECIPES["rf-latent"].needs_vae and not RECIPES["rf-pixel"].needs_vae
    assert build_model("rf-pixel", compile=False).time_sampling == "logit_normal"
    assert build_model("rf-pixel-uniform", compile=False).time_sampling == "uniform"
    vae = VAE(VAEEncoder(latent_channels=4, widths=(8, 16, 16)),
              VAEDecoder((7, 7, 4), widths=(16, 16, 8)))
    latent = build_model("rf-latent", seed=0, compile=False, vae=vae, latent_scale=2.0)
    assert type(latent) is LatentRectifiedFlow and latent.latent_scale == 2.0
    with pytest.raises(ValueError, match="needs a trained VAE"):
        build_model("rf-latent", compile=False)
    with pytest.raises(ValueError, match="kd train reflow --from"):
        build_model("reflow")
    with pytest.raises(ValueError, match="kd train distill --from"):
        build_model("distill")
    assert RECIPES["distill"].time_sampling == "zero"
    assert RECIPES["reflow"].time_sampling == "u_shaped"
    assert RECIPES["reflow-uniform"].time_sampling == "uniform"
    assert RECIPES["reflow"].pair_sampler == "heun"
    assert RECIPES["reflow-uniform"].pair_sampler == "euler"
    assert RECIPES["reflow-uniform"].replace(
        time_sampling="u_shaped", pair_sampler="heun", pair_steps=8,
        learning_rate_decay="cosine", warmup_steps=200, ema_momentum=0.999,
        sampling_shift=6.0, zero_time_share=0.9) \
        == RECIPES["reflow"].replace(name="reflow-uniform",
                                     description=RECIPES["reflow-uniform"].description)


def test_train_reflow_takes_only_the_kinds_that_start_from_a_flow(tmp_path):
    from keras_diffusion.app.train import train_reflow

    with pytest.raises(ValueError,
                       match=r"pairs \(reflow, reflow-uniform, distill\)\. Got .ddpm."):
        train_reflow(_tiny_flow(), kind="ddpm", out_dir=str(tmp_path / "o"))
    assert not list(tmp_path.iterdir())


def test_zero_time_sampling_regresses_the_one_step_map():
    # With t = 0 always, the loss is the one-step map's error:
    # mean((v(x0, 0) - (x1 - x0))^2). The field depends on t, so any other
    # time gives another loss.
    flow = RectifiedFlow(_field_network(lambda x, t: x * 0.0 + 1.0 + 3.0
                                        * keras.ops.reshape(t, (-1, 1, 1, 1))),
                         time_sampling="zero", seed=0)
    noise = np.random.default_rng(0).normal(size=(8, 2, 2, 1)).astype("float32")
    images = np.random.default_rng(1).uniform(-1, 1, (8, 2, 2, 1)).astype("float32")
    loss = flow.compute_loss(x={"noise": noise, "images": images})
    expected = np.mean((1.0 - (images - noise)) ** 2)
    np.testing.assert_allclose(_np(loss), expected, rtol=1e-5)
    assert not np.any(_np(flow.sample_times(8)))
    # A one-step student samples in one step unless told otherwise.
    assert flow.make_sampler().num_steps == 1
    assert flow.make_sampler("euler", 4).num_steps == 4
    assert RectifiedFlow(_tiny_unet()).make_sampler().num_steps == 16


# kd ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("models")
    flow, ddpm = str(directory / "tiny.keras"), str(directory / "ddpm.keras")
    flow_model = _tiny_flow()
    flow_model.time_sampling = "logit_normal"  # as the rf-pixel recipe trains
    flow_model.save(flow)
    DDPM(_tiny_unet()).save(ddpm)
    return {"flow": flow, "ddpm": ddpm}


def test_kd_train_reflow_then_sample(model_files, tmp_path):
    out = tmp_path / "reflow"
    result = CliRunner().invoke(cli, [
        "train", "reflow", "--from", model_files["flow"], "--pairs", "32",
        "--max-steps", "2", "--batch-size", "16", "--out", str(out),
        # Few steps: the default is slow on CPU under torch.
        "--pair-steps", "2", "--pair-sampler", "heun",
    ])
    assert result.exit_code == 0, result.output
    assert (out / "pairs.npz").is_file() and (out / "reflow.keras").is_file()
    assert not (out / "pairs.npz.partial").exists() and not (out / "backup").exists()
    pairs = reflow.load_pairs(out / "pairs.npz")
    assert pairs["noise"].shape == (32, 28, 28, 1)
    flow1 = keras.saving.load_model(model_files["flow"])
    np.testing.assert_allclose(
        pairs["images"][:4], flow1.sample_from_noise(pairs["noise"][:4], "heun", 2,
                                                     progress=False), atol=1e-5)
    flow2 = keras.saving.load_model(str(out / "reflow.keras"))
    assert isinstance(flow2, RectifiedFlow) and flow2.name == "reflow"
    # Flow-2 trains with the reflow recipe's U-shaped t, not Flow-1's, and
    # samples on the recipe's time grid (the pairs used Flow-1's).
    assert flow2.time_sampling == "u_shaped"
    assert (flow1.sampling_shift, flow2.sampling_shift) == (3.0, 6.0)
    assert (flow1.zero_time_share, flow2.zero_time_share) == (0.0, 0.9)

    npz = tmp_path / "s.npz"
    result = CliRunner().invoke(cli, [
        "sample", "--model", str(out / "reflow.keras"), "--sampler", "heun",
        "--steps", "2", "--num", "3", "--out", str(npz),
    ])
    assert result.exit_code == 0, result.output
    assert np.load(npz)["images"].shape == (3, 28, 28, 1)


def test_kd_train_distill_then_sample_in_one_step(model_files, mnist_dir,
                                                  tmp_path):
    out = tmp_path / "distill"
    result = CliRunner().invoke(cli, [
        "train", "distill", "--from", model_files["flow"], "--pairs", "16",
        "--pair-steps", "2", "--max-steps", "2", "--batch-size", "8",
        "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert (out / "pairs.npz").is_file() and (out / "distill.keras").is_file()
    student = keras.saving.load_model(str(out / "distill.keras"))
    assert isinstance(student, RectifiedFlow) and student.name == "distill"
    assert student.time_sampling == "zero"

    # kd's default for a one-step student is one Euler step.
    result = CliRunner().invoke(cli, [
        "evaluate", "--model", str(out / "distill.keras"), "--num", "8",
        "--data", mnist_dir, "--json",
    ])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["sampler"] == "euler" and scores["num_steps"] == 1


def test_kd_evaluate_a_flow(model_files, mnist_dir):
    result = CliRunner().invoke(cli, [
        "evaluate", "--model", model_files["flow"], "--steps", "3", "--num", "8",
        "--data", mnist_dir, "--json",
    ])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["sampler"] == "euler" and scores["num_steps"] == 3


@pytest.mark.parametrize("model, args, match", [
    ("ddpm", ["--sampler", "euler"], "euler and heun sample rectified flows"),
    ("ddpm", ["--sampler", "heun"], "choose one of ddpm, ddim"),
    ("flow", ["--sampler", "ddim"], "choose one of euler, heun"),
    ("flow", ["--sampler", "ddpm", "--steps", "4"], "choose one of euler, heun"),
    ("flow", ["--eta", "0.5"], "eta"),
])
def test_kd_sample_rejects_sampler_model_mismatch(model_files, tmp_path, model,
                                                  args, match):
    result = CliRunner().invoke(cli, ["sample", "--model", model_files[model],
                                      "--out", str(tmp_path / "x.png")] + args)
    assert result.exit_code == 2, result.output
    assert match in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, match", [
    (["reflow"], "needs --from"),
    (["distill"], "`kd train distill` needs --from"),
    (["distill", "--from", "{flow}", "--eval-every", "5"], "--eval-every is not used by"),
    (["ddpm", "--from", "x.keras"], "--from is only for `kd train reflow`"),
    (["rf-pixel", "--pairs", "8", "--pair-steps", "2"],
     "--pairs, --pair-steps are only for `kd train reflow`"),
    (["ddpm", "--pair-sampler", "heun"], "--pair-sampler is only for `kd train reflow`"),
    (["reflow", "--from", "{flow}", "--pair-sampler", "rk4"], "Invalid value for '--pair-sampler'"),
    (["reflow", "--from", "{ddpm}"], "needs a RectifiedFlow"),
    (["reflow", "--from", "{flow}", "--data", "mnist"], "--data is not used by"),
])
def test_kd_train_reflow_rejects_bad_flags(model_files, tmp_path, args, match):
    args = [arg.format(**model_files) for arg in args]
    result = CliRunner().invoke(cli, ["train"] + args + ["--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert match in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())
