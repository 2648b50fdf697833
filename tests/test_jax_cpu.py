"""`split_cpu_into_devices`: one JAX CPU device per core, via XLA_FLAGS.

Whether training then uses the devices is checked in a subprocess with two
devices (tests/test_distributed.py); here, the flag handling.
"""

import keras
import pytest

from keras_diffusion.utils import jax_cpu

FLAG = jax_cpu.DEVICE_COUNT_FLAG


@pytest.fixture
def fresh_jax(monkeypatch):
    """As if JAX had not started its backend yet."""
    monkeypatch.setattr(jax_cpu, "_jax_backend_started", lambda: False)
    # setenv (not delenv) so that monkeypatch restores the variable however
    # the code under test changes it.
    monkeypatch.setenv("XLA_FLAGS", "")
    return monkeypatch


def test_adds_the_device_count_to_xla_flags(fresh_jax):
    import os

    fresh_jax.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert jax_cpu.split_cpu_into_devices(3) == 3
    assert os.environ["XLA_FLAGS"] == (
        f"--xla_cpu_enable_fast_math=false {FLAG}=3")


def test_defaults_to_the_usable_cores(fresh_jax):
    import os

    fresh_jax.setattr(jax_cpu, "usable_cores", lambda: 64)
    assert jax_cpu.split_cpu_into_devices() == jax_cpu.MAX_DEVICES
    assert os.environ["XLA_FLAGS"] == f"{FLAG}={jax_cpu.MAX_DEVICES}"
    fresh_jax.setenv("XLA_FLAGS", "")
    fresh_jax.setattr(jax_cpu, "usable_cores", lambda: 1)
    assert jax_cpu.split_cpu_into_devices() is None
    assert os.environ["XLA_FLAGS"] == ""


def test_leaves_a_given_device_count_alone(fresh_jax):
    import os

    fresh_jax.setenv("XLA_FLAGS", f"{FLAG}=1")
    assert jax_cpu.split_cpu_into_devices(2) is None
    assert os.environ["XLA_FLAGS"] == f"{FLAG}=1"


def test_does_nothing_once_jax_has_started(monkeypatch):
    import os

    monkeypatch.setattr(jax_cpu, "_jax_backend_started", lambda: True)
    monkeypatch.setenv("XLA_FLAGS", "")
    assert jax_cpu.split_cpu_into_devices(2) is None
    assert os.environ["XLA_FLAGS"] == ""


def test_one_device_or_another_backend_means_no_split():
    # This process has one device on JAX (the suite sets no device count),
    # and the other backends never split.
    assert jax_cpu.cpu_devices_for(128) is None
    assert jax_cpu.cpu_devices_for("128") is None
    if keras.backend.backend() == "jax":
        assert keras.distribution.list_devices() == ["cpu:0"]
