"""The trainer's watch over running sandboxes: how much time they have had, how much memory they hold.

Why: on a loaded machine (more sandboxes than cores) a wall clock measures the neighbours as much as the
test. So a test's deadline is counted on its own clock: wall-clock time minus the time its processes spent
waiting for a CPU while they could have run (the kernel's /proc/PID/task/TID/schedstat, second field),
which CPU-hungry neighbours can lengthen but never shorten. A sleeping or blocked test ages as before; a
CPU-bound one ages only while it runs, and its CPU time is capped per sandbox (all its processes together,
ended ones included, from /proc/PID/stat), so a burner cannot take more than its share by forking. A
wall-clock backstop, scaled to the number of tests running at once per core, still ends everything (the own
clock of a sandbox that keeps many threads waiting barely moves).

Not cgroups: a cgroup of its own per sandbox would need a delegated cgroup v2 subtree (root on the host,
or a systemd `Delegate=` for a user), and the machines this runs on may have the CPU and memory
controllers on cgroup v1 or none for an ordinary user; /proc works for every user on every Linux.

Memory is summed over every process of a sandbox (resident pages, /proc/PID/statm), so the limit holds per
sandbox rather than per process; it is checked every POLL_SECONDS, and between two checks RLIMIT_AS per
process bounds the overshoot.

The processes of a sandbox are its first process and every descendant found through the parents in
/proc/PID/stat (one scan of /proc shared by all watches, at most every POLL_SECONDS).
"""

from __future__ import annotations

import math
import os
import threading
import time

POLL_SECONDS = 0.1
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process ended between the listing and the read
        return None


def schedstat_available() -> bool:
    """Whether this kernel reports per-thread run-queue waits (CONFIG_SCHED_INFO)."""
    raw = _read(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/schedstat")
    return raw is not None and len(raw.split()) >= 2


class _ProcessTable:
    """Every process on the machine: {parent pid: [child pids]} and {pid: (CPU seconds it has used, the
    same with the children it has reaped, its start time)}, from one scan of /proc/PID/stat, refreshed at
    most every POLL_SECONDS."""

    def __init__(self):
        self._lock = threading.Lock()
        self._children: dict[int, list[int]] = {}
        self._cpu: dict[int, tuple[float, float, int]] = {}
        self._taken = -math.inf

    def snapshot(self) -> tuple[dict[int, list[int]], dict[int, tuple[float, float, int]]]:
        with self._lock:
            if time.monotonic() - self._taken >= POLL_SECONDS:
                self._children, self._cpu = self._scan()
                self._taken = time.monotonic()
            return self._children, self._cpu

    @staticmethod
    def _scan() -> tuple[dict[int, list[int]], dict[int, tuple[float, float, int]]]:
        children: dict[int, list[int]] = {}
        cpu: dict[int, tuple[float, float, int]] = {}  # pid -> (own CPU s, with reaped children, start time)
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            raw = _read(f"/proc/{entry.name}/stat")
            if raw is None:
                continue
            try:  # the command name may hold spaces and parentheses: the fields follow the last ")"
                fields = raw.rsplit(b")", 1)[1].split()
                parent = int(fields[1])
                own = int(fields[11]) + int(fields[12])  # utime, stime (proc(5) fields 14, 15)
                reaped = int(fields[13]) + int(fields[14])  # cutime, cstime: children it has waited for
                started = int(fields[19])  # with the pid, names the process (pids are reused)
            except (IndexError, ValueError):
                continue
            pid = int(entry.name)
            children.setdefault(parent, []).append(pid)
            cpu[pid] = (own / _TICKS_PER_SECOND, (own + reaped) / _TICKS_PER_SECOND, started)
        return children, cpu


_TABLE = _ProcessTable()


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def backstop_seconds(own_seconds: float, cpu_seconds: float, concurrent: int) -> float:
    """The wall-clock bound on one test: its own-time limit, plus room for the two sandboxes of every test
    running at once to use their whole CPU limit on this machine's cores."""
    return own_seconds + cpu_seconds * math.ceil(2 * max(1, concurrent) / (os.cpu_count() or 1))


class Watch:
    """Watches the process trees rooted at `roots` (one per sandbox) from now on.

    remaining() -> seconds left, at most POLL_SECONDS (0 when a limit is reached; `exceeded` then says
    which). Limits: `own_seconds` of the own clock (wall-clock time less the time the sandboxes' threads
    waited for a CPU, per poll at most that poll's wall time); `cpu_seconds` of CPU per sandbox, all its
    processes together, the ended ones included; `memory_bytes` resident per sandbox, all its processes
    together; and the wall-clock `backstop` (a time.monotonic() value). Where the kernel keeps no schedstat
    (`fair` False) there is no own clock: the per-sandbox CPU limit and the backstop alone end a test, so a
    CPU burner still only slows its neighbours, and a sleeping test lasts until the backstop."""

    def __init__(self, roots: list[int], own_seconds: float, backstop: float, cpu_seconds: float,
                 memory_bytes: int, fair: bool | None = None):
        self.roots, self.own_seconds, self.backstop = list(roots), own_seconds, backstop
        self.cpu_seconds, self.memory_bytes = cpu_seconds, memory_bytes
        self.fair = schedstat_available() if fair is None else fair
        self.exceeded: str | None = None
        self.started = self._polled = time.monotonic()
        self.stalled = 0.0
        self.peak_bytes = 0
        self.cpu_used = [0.0] * len(self.roots)
        self._seen: list[dict[tuple[int, int], float]] = [{} for _ in self.roots]  # (pid, start) -> own CPU s
        self._waited: dict[int, int] = {}  # thread id -> run-queue wait (ns) at the last poll
        self._poll(self.started)  # waits from before the watch began are not the test's
        self.stalled = 0.0

    def own_elapsed(self) -> float:
        return time.monotonic() - self.started - self.stalled

    def remaining(self) -> float:
        now = time.monotonic()
        if self.exceeded is None and now - self._polled >= POLL_SECONDS:
            self._poll(now)
        if self.exceeded is not None:
            return 0.0
        if now >= self.backstop:
            self.exceeded = f"no verdict within the wall-clock backstop of {self.backstop - self.started:.0f} s"
            return 0.0
        if not self.fair:  # no own clock: the CPU limit and the backstop decide
            return min(POLL_SECONDS, self.backstop - now)
        if self.own_elapsed() >= self.own_seconds:
            self.exceeded = f"no verdict within {self.own_seconds:g} s of its own time"
            return 0.0
        return min(POLL_SECONDS, self.backstop - now, self.own_seconds - self.own_elapsed())

    def _poll(self, now: float) -> None:
        children, cpu = _TABLE.snapshot()
        newly_waited = 0
        for i, root in enumerate(self.roots):
            resident, used = 0, 0.0
            for pid in _tree(root, children):
                if pid in cpu:
                    own, with_reaped, started = cpu[pid]
                    used += with_reaped
                    self._seen[i][(pid, started)] = own
                statm = _read(f"/proc/{pid}/statm")
                if statm is not None and len(statm.split()) > 1:
                    resident += int(statm.split()[1]) * _PAGE_BYTES
                if self.fair:
                    newly_waited += self._new_waits(pid)
            self.peak_bytes = max(self.peak_bytes, resident)
            # Two lower bounds of what the sandbox has used, the larger counts: the live processes with the
            # children they reaped (an ended child's time moves into its parent's), and every process seen
            # with its own time at its last sighting (children reaped unseen, SIGCHLD ignored, are missing
            # from the first; only those that also ended between two polls are missing from both)
            self.cpu_used[i] = max(self.cpu_used[i], used, sum(self._seen[i].values()))
            used = self.cpu_used[i]
            if self.exceeded is None and resident > self.memory_bytes:
                # rounded up to 0.1 MiB: a sum a few pages over the limit must not read as the limit itself
                held_mib = math.ceil(resident * 10 / 2**20) / 10
                self.exceeded = (f"over the memory limit: its sandbox's processes held {held_mib:.1f} MiB "
                                 f"(limit {self.memory_bytes / 2**20:g} MiB)")
            if self.exceeded is None and used > self.cpu_seconds:
                self.exceeded = (f"over the CPU limit: its sandbox's processes used {used:.1f} s "
                                 f"(limit {self.cpu_seconds:g} s)")
        # the wall time to set the waits against ends after the reads: a reader that itself waited for a
        # CPU before reading would otherwise cut off waits that did happen
        read = time.monotonic()
        self.stalled += min(read - self._polled, newly_waited / 1e9)
        self._polled = read

    def _new_waits(self, pid: int) -> int:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return 0
        new = 0
        for tid in threads:
            raw = _read(f"/proc/{pid}/task/{tid}/schedstat")
            if raw is None:
                continue
            try:
                waited = int(raw.split()[1])
            except (IndexError, ValueError):
                continue
            key = int(tid)
            new += max(0, waited - self._waited.get(key, 0))  # a reused thread id starts lower: count afresh
            self._waited[key] = waited
        return new
