"""`kd info`: version, active backend (and where it came from), devices and
the shipped presets with their metadata."""

import keras
from click.testing import CliRunner

from keras_diffusion import __version__
from keras_diffusion.presets import PRETRAINED
from keras_diffusion.presets import available_models
from keras_diffusion_cli.main import cli


def test_info_shows_version_backend_devices_and_weights(monkeypatch):
    backend = keras.backend.backend()
    monkeypatch.setenv("KERAS_BACKEND", backend)
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"keras_diffusion {__version__}"
    assert f"backend {backend} (from KERAS_BACKEND)" in lines[1]
    assert lines[2].startswith(f"{backend} ") and "devices: " in lines[2]
    present = set(available_models())
    assert present, "no shipped weights in this install"
    for name in PRETRAINED:
        (index,) = [i for i, line in enumerate(lines) if line.split()[:1] == [name]]
        assert ("MiB" in lines[index]) == (name in present), lines[index]
        if name in present:  # the preset's metadata, on the next line
            details = lines[index + 1]
            assert "parameters, saved " in details and ", keras 3." in details
