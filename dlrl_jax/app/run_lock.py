"""One run per folder: `dlrl-jax train` holds an exclusive lock on RUN_DIR/run.lock while it runs.

The lock is an flock(2) on the file, which the kernel (or the NFS server, for a folder on shared
storage) drops when the holding process dies, however it dies; the file also records the holder's
host and pid, so that a refused second run can say who holds it, and a lock file left by a dead run
is taken over with a message.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

LOCK_FILE = "run.lock"


class RunLockedError(RuntimeError):
    """Another live process is running in the same run folder."""


class RunLock:
    def __init__(self, run_dir: str, log=print, fix: str = "or choose another run.out_dir"):
        self.path = os.path.join(run_dir, LOCK_FILE)
        self.log = log
        self.fix = fix  # the end of the refusal: how else to proceed
        self._fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise RunLockedError(f"{self.path}: another run is writing to this folder (host "
                                 f"{holder.get('host', '?')}, pid {holder.get('pid', '?')}, since "
                                 f"{holder.get('started', '?')}); wait for it to end, stop it, {self.fix}") from None
        except OSError as e:  # a file system without flock (some Lustre/GPFS mounts): say so and go on
            self.log(f"[dlrl-jax] cannot lock {self.path} ({e.strerror}); nothing stops a second run into this "
                     "folder: make sure there is none")
        previous = _read(fd)
        if previous:  # a lock file whose holder died without removing it (kill -9, node failure)
            self.log(f"[dlrl-jax] taking over the stale lock of host {previous.get('host', '?')} pid "
                     f"{previous.get('pid', '?')} (that process is gone) in {self.path}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file: released cleanly
            os.close(self._fd)  # (closing releases the flock)
            self._fd = None


def _read(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {"host": "?", "pid": "?"}
