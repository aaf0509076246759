"""A sandbox for model-written code, and test verdicts that code cannot forge.

    run_tests(code, tests, limits=Limits(), mode="namespaces") -> list[bool]      one bool per test
    run_tests_many([(code, tests), ...], limits, mode) -> list[list[bool]]       all tests in parallel
    judge_tests_many(...) -> list[list[Verdict]]                                 the same, with reasons
    run_python(source, stdin="", limits, mode) -> Result                         one bounded program

`mode="namespaces"` (default) needs bubblewrap (`bwrap`) and unprivileged user namespaces; where they are
missing every call raises SandboxUnavailable with the cause and the fix. `mode="rlimits"` is the weaker
opt-in mode (see isolation.py). A test statement is any Python: `assert f(x) == y`, several lines with
imports, HumanEval's `def check(candidate): ...` + `check(f)`; it passes iff it runs to its end. See
judging.py and child_judge.py for what the solution's process can and cannot do to a verdict.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from dlrl_jax.rewards.sandbox.channels import read_until_eof
from dlrl_jax.rewards.sandbox.isolation import MODES, Limits, SandboxUnavailable, Sandboxed, check_mode, setup
from dlrl_jax.rewards.sandbox.judging import Verdict, judge_tests_many, run_tests, run_tests_many
from dlrl_jax.rewards.sandbox.watch import Watch, backstop_seconds

__all__ = ["MODES", "Limits", "Result", "SandboxUnavailable", "Verdict", "check_available", "check_mode", "judge_tests_many",
           "run_python", "run_tests", "run_tests_many"]


class Result(NamedTuple):
    returncode: int | None  # None when it was stopped at a limit of the watch (time, or the sandbox's memory)
    stdout: str             # the first limits.output_bytes of each
    stderr: str
    timed_out: bool         # stopped for time
    stopped: str | None = None  # why the watch stopped it (time or memory), None when it ended by itself


def check_available(mode: str = "namespaces") -> None:
    """Raises SandboxUnavailable (or ValueError for an unknown mode) unless `mode` works here."""
    setup(mode, int(Limits().disk_bytes))


def run_python(source: str, stdin: str = "", limits: Limits = Limits(), mode: str = "namespaces") -> Result:
    """Runs `source` as __main__ in a sandbox, with `stdin` as its standard input; returns its bounded
    output and exit status (under bubblewrap a death by signal N reads as 128 + N)."""
    found = setup(mode, int(limits.disk_bytes))
    backstop_at = time.monotonic() + backstop_seconds(limits.wall_seconds, limits.cpu_seconds, 1)
    proc = Sandboxed(found, source, None, (), limits, [], stdin=stdin.encode(), capture=True)
    try:
        watch = Watch([proc.pid], limits.wall_seconds, backstop_at, limits.cpu_seconds, int(limits.memory_bytes))
        out, stopped = read_until_eof({"out": proc.stdout, "err": proc.stderr}, watch.remaining,
                                      {"out": limits.output_bytes, "err": limits.output_bytes})
        if not stopped and proc.wait(watch.remaining) is None:
            stopped = True  # closed its output but went on running
    finally:
        proc.kill()
    reason = (watch.exceeded or "no exit within its time") if stopped else None
    return Result(None if stopped else proc.returncode, out["out"].decode("utf-8", "replace"),
                  out["err"].decode("utf-8", "replace"), stopped and reason.startswith("no "), reason)
