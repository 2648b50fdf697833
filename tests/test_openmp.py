"""`kd` picks OpenMP's waiting policy for PyTorch from the machine's load."""

import os
import sys

from keras_diffusion_cli import openmp


def test_a_busy_machine_gets_passive_waiting_and_an_idle_one_the_default():
    busy = {}
    assert openmp.choose_wait_policy(busy, measure=lambda: 1.0) == "PASSIVE"
    assert busy == {"OMP_WAIT_POLICY": "PASSIVE"}
    idle = {}
    assert openmp.choose_wait_policy(idle, measure=lambda: 0.1) is None
    assert idle == {}
    unknown = {}
    assert openmp.choose_wait_policy(unknown, measure=lambda: None) is None
    assert unknown == {}


def test_a_policy_the_user_set_or_off_is_left_alone():
    given = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert openmp.choose_wait_policy(given, measure=lambda: 2.0) is None
    assert given == {"OMP_WAIT_POLICY": "ACTIVE"}
    off = {"KD_OMP_POLICY": "off"}
    assert openmp.choose_wait_policy(off, measure=lambda: 2.0) is None
    assert "OMP_WAIT_POLICY" not in off


def test_other_processes_cores_is_the_machines_busy_time_less_its_own(monkeypatch):
    # The machine was busy 0.5 s more over 0.25 s, of which 0.1 s was ours:
    # others kept 1.6 cores busy.
    machine = iter([100.0, 100.5])
    own = iter([3.0, 3.1])
    clock = iter([10.0, 10.25])
    monkeypatch.setattr(openmp, "_busy_seconds", lambda: next(machine))
    monkeypatch.setattr(openmp, "_own_seconds", lambda: next(own))
    monkeypatch.setattr(openmp.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(openmp.time, "sleep", lambda seconds: None)
    assert abs(openmp.other_processes_cores(0.25) - 1.6) < 1e-9


def test_it_reads_this_machine():
    cores = openmp.other_processes_cores()
    if sys.platform.startswith("linux"):
        # At most every core (give or take the clock ticks /proc/stat counts).
        assert cores is not None and 0.0 <= cores <= os.cpu_count() + 1.0
    else:
        assert cores is None
