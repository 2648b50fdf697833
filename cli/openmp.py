"""OpenMP's waiting policy for PyTorch on a shared CPU, chosen at start-up.

PyTorch's CPU build runs its operations on GNU OpenMP threads, which spin
while they wait for each other at every barrier. On an idle machine that is
the fastest choice. Beside another CPU-bound job it collapses: a thread
spins for a partner that the other job has descheduled, and training fell
to 0.30x of its idle speed (docs/performance.md, "Beside another CPU-bound
job"). Waiting passively (`OMP_WAIT_POLICY=PASSIVE`) keeps about half, but
costs a fifth of the idle speed, so no fixed setting is right for both.

`choose_wait_policy()` looks at the machine once, before PyTorch starts
(OpenMP reads the variable when it loads): if other processes are already
keeping at least `BUSY_CORES` cores busy, it sets `OMP_WAIT_POLICY=PASSIVE`;
otherwise it leaves OpenMP's default. A policy the user set is never
changed. `kd` calls it for every command that computes under the PyTorch
backend; `KD_OMP_POLICY=off` turns that off. A job that starts after `kd`
is not seen.

It lives in the CLI's package because it must run before anything imports
`keras_diffusion` (which imports Keras, and so PyTorch and its OpenMP). In
a script of your own, set `OMP_WAIT_POLICY` before importing Keras, or call
this first (`from keras_diffusion_cli.openmp import choose_wait_policy`).
"""

import os
import time

# Other processes' CPU use, in cores, from which threads wait passively.
BUSY_CORES = 0.5
# How long the machine is watched, in seconds.
WATCH_SECONDS = 0.2
DISABLE_ENV = "KD_OMP_POLICY"
OFF_VALUES = ("0", "off", "false", "no")


def other_processes_cores(seconds=WATCH_SECONDS):
    """Cores' worth of CPU time that other processes used over `seconds`.

    Reads the machine's busy time from `/proc/stat` before and after
    sleeping `seconds`, less this process's own CPU time over the same
    span. `None` where `/proc/stat` cannot be read (not Linux).
    """
    before, own_before = _busy_seconds(), _own_seconds()
    if before is None:
        return None
    start = time.monotonic()
    time.sleep(seconds)
    after, own_after = _busy_seconds(), _own_seconds()
    elapsed = time.monotonic() - start
    if after is None or elapsed <= 0:
        return None
    others = (after - before) - (own_after - own_before)
    return max(others, 0.0) / elapsed


def choose_wait_policy(environ=None, measure=other_processes_cores):
    """Sets `OMP_WAIT_POLICY=PASSIVE` in `environ` if the machine is busy.

    Args:
        environ: the environment to read and change (default `os.environ`).
        measure: callable returning other processes' CPU use in cores, or
            `None` if unknown (default `other_processes_cores`).

    Returns:
        `"PASSIVE"` when it set the policy, else `None` (a policy was
        already set, `KD_OMP_POLICY=off`, the machine is not busy, or its
        load cannot be read).
    """
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in environ:
        return None
    if environ.get(DISABLE_ENV, "").strip().lower() in OFF_VALUES:
        return None
    cores = measure()
    if cores is None or cores < BUSY_CORES:
        return None
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"


def _busy_seconds():
    """The machine's non-idle CPU seconds since boot, all cores summed."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest is in user)
    ticks = [int(value) for value in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds():
    times = os.times()
    return times.user + times.system
