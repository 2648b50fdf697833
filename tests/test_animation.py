"""Sampling trajectories (`generate(..., return_trajectory=True)`) and the
GIFs of `kd sample --animate`."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import randomize
from keras_diffusion.models import DDPM
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.models.generative_model import trajectory_steps
from keras_diffusion.networks import UNet
from keras_diffusion.viz import save_animation
from keras_diffusion_cli.main import cli

SCALE = 2  # pixels per image pixel in the GIFs


def _network(num_classes=None):
    network = UNet(widths=(8,), attention_levels=(), embedding_dim=16,
                   num_heads=1, num_classes=num_classes)
    randomize(network)
    return network


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny unconditional DDPM and a tiny class-conditional flow, saved."""
    folder = tmp_path_factory.mktemp("models")
    paths = {"ddpm": str(folder / "ddpm.keras"), "flow": str(folder / "flow.keras")}
    DDPM(_network(), seed=0).save(paths["ddpm"])
    RectifiedFlow(_network(num_classes=10), seed=0).save(paths["flow"])
    return paths


def _grid_size(num_images, num_columns=None):
    """(width, height) of an animation frame: the grid plus the progress bar."""
    num_columns = num_columns or int(np.ceil(np.sqrt(num_images)))
    num_rows = -(-num_images // num_columns)
    width = (num_columns * 30 + 2) * SCALE
    height = (num_rows * 30 + 2) * SCALE + 3 * SCALE
    return width, height


def _frames(path):
    with Image.open(path) as gif:
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
        return gif.n_frames, gif.size, durations


def test_trajectory_steps():
    assert trajectory_steps(5) == [0, 1, 2, 3, 4]
    assert trajectory_steps(5, 9) == [0, 1, 2, 3, 4]
    assert trajectory_steps(10, 4) == [0, 3, 6, 9]
    assert trajectory_steps(1000, 49)[-1] == 999
    assert len(trajectory_steps(1000, 49)) == 49
    assert trajectory_steps(7, 1) == [6]
    with pytest.raises(ValueError, match="trajectory_frames"):
        trajectory_steps(5, 0)


@pytest.mark.parametrize("sampler, steps", [("ddim", 4), ("ddpm", 4)])
def test_diffusion_trajectory(sampler, steps):
    model = DDPM(_network(), seed=0)
    plain = model.generate(3, sampler=sampler, num_steps=steps, seed=1,
                           progress=False, batch_size=2)
    images, frames = model.generate(3, sampler=sampler, num_steps=steps, seed=1,
                                    progress=False, return_trajectory=True,
                                    batch_size=2)
    # The same images as without the trajectory; one frame per step.
    np.testing.assert_allclose(images, plain, atol=1e-5)
    assert frames.shape == (steps, 3, 28, 28, 1)
    assert frames.min() >= 0 and frames.max() <= 1
    # The last step's x_0 estimate is the output (the last step adds no noise).
    np.testing.assert_allclose(frames[-1], images, atol=1e-4)
    _, fewer = model.generate(3, sampler=sampler, num_steps=steps, seed=1,
                              progress=False, return_trajectory=True,
                              trajectory_frames=2, batch_size=2)
    np.testing.assert_allclose(fewer, frames[[0, steps - 1]], atol=1e-5)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_flow_trajectory_with_guidance(sampler):
    model = RectifiedFlow(_network(num_classes=10), seed=0)
    kwargs = dict(sampler=sampler, num_steps=3, seed=2, progress=False,
                  labels=[1, 3], guidance=2.0)
    plain = model.generate(2, **kwargs)
    images, frames = model.generate(2, return_trajectory=True, **kwargs)
    np.testing.assert_allclose(images, plain, atol=1e-5)
    assert frames.shape == (3, 2, 28, 28, 1)
    if sampler == "euler":  # the last Euler step lands on its own prediction
        np.testing.assert_allclose(frames[-1], images, atol=1e-4)


def test_save_animation_frames_and_size(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.uniform(size=(5, 6, 28, 28, 1)).astype("float32")
    path = tmp_path / "a.gif"
    save_animation(frames, path, final=frames[-1], num_columns=3)
    count, size, durations = _frames(path)
    assert count == 6  # five frames and the final grid
    assert size == _grid_size(6, num_columns=3)
    assert durations[-1] > durations[0]
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]  # no temp files
    with pytest.raises(ValueError, match=r"\.gif"):
        save_animation(frames, tmp_path / "a.png")


@pytest.mark.parametrize("args, num_frames, size", [
    # Conditional flow, Heun, with --class and --guidance: 3 steps + final.
    (["--model", "flow", "--sampler", "heun", "--steps", "3", "--class", "3",
      "--guidance", "2", "--num", "4"], 4, _grid_size(4)),
    # Without --class: one row per class, one image per class here.
    (["--model", "flow", "--num", "10"] + ["--steps", "2"], 3, _grid_size(10, 1)),
    # DDPM with more steps than frames: 49 steps shown, then the final grid.
    (["--model", "ddpm", "--sampler", "ddim", "--steps", "52", "--num", "1"],
     50, _grid_size(1)),
])
def test_kd_sample_animate(models, tmp_path, args, num_frames, size):
    args[1] = models[args[1]]  # "--model", name
    gif, png = tmp_path / "traj.gif", tmp_path / "s.png"
    result = CliRunner().invoke(cli, ["sample", "--out", str(png), "--animate",
                                      str(gif)] + args)
    assert result.exit_code == 0, result.output
    count, gif_size, durations = _frames(gif)
    assert count == num_frames
    assert gif_size == size
    assert durations[-1] > durations[0]
    assert png.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.png", "traj.gif"]


@pytest.mark.parametrize("animate", ["traj.png", "traj", "traj.gif.npz"])
def test_kd_sample_animate_needs_gif(models, tmp_path, animate):
    result = CliRunner().invoke(cli, [
        "sample", "--model", models["ddpm"], "--steps", "2", "--out",
        str(tmp_path / "s.png"), "--animate", str(tmp_path / animate)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: --animate {str(tmp_path / animate)!r} must end in .gif."]
    assert not list(tmp_path.iterdir())


def test_library_sample_checks_animation_before_sampling(models, tmp_path):
    from keras_diffusion.app.sample import sample

    with pytest.raises(ValueError, match=r"\.gif"):
        sample(models["ddpm"], num_steps=2, out=str(tmp_path / "s.png"),
               animate=str(tmp_path / "a.jpg"), progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        sample(models["ddpm"], num_steps=2, out=str(tmp_path / "s.png"),
               animate=str(tmp_path / "missing" / "a.gif"), progress=False)
    assert not list(tmp_path.iterdir())
