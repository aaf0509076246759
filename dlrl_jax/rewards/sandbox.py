"""Run untrusted Python (model-written code) in its own process, so that nothing it does reaches the
trainer: a fresh temporary directory as cwd and HOME, a scrubbed environment, `python -I`, a new
session killed as a whole process group, a wall-clock timeout, and limits on CPU time, address space,
file size, open files and processes.

When the trainer runs as root (containers, CI), the child also drops to the `nobody` user, so it
cannot signal the trainer, write the trainer's files or exceed the process limit (RLIMIT_NPROC is
per user, and root is exempt from it). As an ordinary user the child runs as that same user: the
limits and the process-group kill still bound it, but it could signal other processes of that user;
run the trainer in a container for hostile workloads.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile


@dataclasses.dataclass(frozen=True)
class Limits:
    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 * 2**20
    file_bytes: int = 1 * 2**20      # also bounds what stdout and stderr can hold
    open_files: int = 64
    processes: int = 32
    output_bytes: int = 64 * 1024    # how much of stdout / stderr is read back


@dataclasses.dataclass(frozen=True)
class Result:
    returncode: int | None           # None when killed at the wall-clock limit
    stdout: str
    stderr: str
    timed_out: bool


def _drop_to(limits: Limits, uid: int | None, gid: int | None):
    def prepare():  # runs in the child between fork and exec
        for name, value in ((resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory_bytes),
                            (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_NOFILE, limits.open_files),
                            (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(name, (value, value))
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
    return prepare


def _world_executable(path: str) -> bool:
    """True if a user with no special rights can run `path` (every directory on the way searchable)."""
    real = os.path.realpath(path)
    if not os.path.isfile(real) or not os.stat(real).st_mode & 0o001:
        return False
    parent = os.path.dirname(real)
    while True:
        if not os.stat(parent).st_mode & 0o001:
            return False
        if parent == os.path.dirname(parent):
            return True
        parent = os.path.dirname(parent)


def _interpreter(unprivileged: bool) -> str:
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3",
                  "/usr/local/bin/python3"]
    if not unprivileged:
        return sys.executable
    for path in candidates:
        if path and _world_executable(path):
            return path
    raise RuntimeError("the sandbox drops to user 'nobody' when run as root, but no Python interpreter is "
                       "executable by that user (tried " + ", ".join(candidates) + "); install python3 "
                       "system-wide or run the trainer as an ordinary user")


def _unprivileged_ids():
    if os.geteuid() != 0:
        return None, None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def run_python(source: str, stdin: str = "", limits: Limits = Limits(), files: dict[str, str] | None = None) -> Result:
    """Runs `source` as main.py (plus any `files`) in a fresh directory; returns its bounded output."""
    uid, gid = _unprivileged_ids()
    workdir = tempfile.mkdtemp(prefix="dlrl_sandbox_")
    try:
        for name, text in dict(files or {}, **{"main.py": source}).items():
            with open(os.path.join(workdir, name), "w") as f:
                f.write(text)
        if uid is not None:
            os.chown(workdir, uid, gid)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "TMPDIR": workdir}
        out_path, err_path = os.path.join(workdir, ".stdout"), os.path.join(workdir, ".stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([_interpreter(uid is not None), "-I", "-S", "main.py"], cwd=workdir, env=env,
                                    stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True,
                                    preexec_fn=_drop_to(limits, uid, gid), close_fds=True)
            timed_out = False
            try:
                proc.communicate(stdin.encode(), timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)
                proc.wait()
        return Result(None if timed_out else proc.returncode, _read(out_path, limits.output_bytes),
                      _read(err_path, limits.output_bytes), timed_out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)  # the program and anything it spawned (its session)
    except ProcessLookupError:
        pass


def _read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def run_many(jobs: list[dict], max_workers: int | None = None) -> list[Result]:
    """`run_python(**job)` for every job, in parallel across cores, results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers or os.cpu_count()) as pool:
        return list(pool.map(lambda job: run_python(**job), jobs))
