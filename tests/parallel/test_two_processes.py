"""A real 2-process run on localhost (jax.distributed, gloo CPU collectives, 2 processes x 4 devices)
gives the single-process 8-device result of one EGSPO update."""

import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args, devices):
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    env = dict(os.environ, XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-m", "tests.parallel.two_process_check", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return str(s.getsockname()[1])


def _result(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_two_processes_match_one():
    single = _run(["single"], 8)
    port = _free_port()
    workers = [_run(["multi", port, str(i)], 4) for i in range(2)]
    lead = json.loads(_result(workers[0]).strip().splitlines()[-1])
    assert "{" not in _result(workers[1])  # only process 0 reports (gloo's own log lines aside)
    one = json.loads(_result(single).strip().splitlines()[-1])
    assert lead["processes"] == 2 and one["processes"] == 1
    assert abs(lead["loss"] - one["loss"]) <= 1e-5 * abs(one["loss"])
    assert abs(lead["checksum"] - one["checksum"]) <= 1e-5 * one["checksum"]
