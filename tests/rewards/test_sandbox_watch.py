"""The sandbox's watch (watch.py) against the kernel's own accounts of the same processes: a spinning
process never sleeps, so its own clock (wall-clock less its waits for a CPU) must equal the CPU time the
kernel charged it (utime + stime), however many spinners share its CPU."""

import os
import subprocess
import sys
import time

import pytest

from dlrl_jax.rewards.sandbox import watch

# each spinner ends itself after 20 s of CPU, should the test fail to end it
SPIN = "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (20, 20))\nwhile True:\n    pass\n"


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not watch.schedstat_available(), reason="this kernel keeps no schedstat (no own clock)")
def test_own_clock_of_a_spinner_is_its_cpu_time_beside_two_spinners_on_one_cpu():
    cpu = sorted(os.sched_getaffinity(0))[0]
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(3)]
    try:
        for proc in procs:  # three spinners on one CPU: each gets about a third of it
            os.sched_setaffinity(proc.pid, {cpu})
        watched = procs[0]
        w = watch.Watch([watched.pid], own_seconds=60, backstop=time.monotonic() + 60, cpu_seconds=60,
                        memory_bytes=2**40)
        cpu_before = _cpu_seconds(watched.pid)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert w.remaining() > 0
            time.sleep(0.05)
        w.remaining()
        w._poll(time.monotonic())  # a last reading now, beside the kernel's
        charged = _cpu_seconds(watched.pid) - cpu_before
        own, wall = w.own_elapsed(), time.monotonic() - w.started
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    # waited about two thirds of the time (more on a busy machine): the own clock ran at about a third
    assert w.stalled > 0.5 * wall, (w.stalled, wall)
    assert abs(own - charged) < 0.1 + 0.1 * wall, (own, charged, wall)  # ticks of 10 ms, polls of 0.1 s
    print(f"spinner: wall {wall:.2f} s, waited {w.stalled:.2f} s, own clock {own:.2f} s, CPU charged {charged:.2f} s")


def test_cpu_and_memory_are_summed_over_a_process_tree():
    """A parent and two children, each holding 40 MiB it has written and spinning: the watch's sum of
    resident memory covers all three, and it stops them for CPU once the three together pass the limit,
    never counting more than the kernel charged them."""
    program = ("import os, resource\nresource.setrlimit(resource.RLIMIT_CPU, (20, 20))\n"
               "for _ in range(2):\n    if os.fork() == 0:\n        break\n"
               "block = bytearray(40 * 2**20)\nfor i in range(0, len(block), 4096):\n    block[i] = 1\n"
               "while True:\n    pass\n")
    parent = subprocess.Popen([sys.executable, "-c", program])
    tree = [parent.pid]
    try:
        w = watch.Watch([parent.pid], own_seconds=60, backstop=time.monotonic() + 60, cpu_seconds=1.0,
                        memory_bytes=2**40)
        deadline = time.monotonic() + 30
        while w.remaining() > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        tree = watch._tree(parent.pid, watch._TABLE.snapshot()[0])
        charged = sum(_cpu_seconds(pid) for pid in tree)
    finally:
        tree = watch._tree(parent.pid, watch._TABLE.snapshot()[0])
        for pid in tree[::-1]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        parent.wait()
    assert len(tree) == 3
    assert w.exceeded is not None and w.exceeded.startswith("over the CPU limit"), w.exceeded
    assert 1.0 < w.cpu_used[0] <= charged + 0.01, (w.cpu_used, charged)
    assert w.peak_bytes >= 3 * 40 * 2**20, w.peak_bytes  # each wrote its own 40 MiB
