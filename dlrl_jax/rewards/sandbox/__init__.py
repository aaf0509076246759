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

__all__ = ["MODES", "Limits", "Result", "SandboxUnavailable", "Verdict", "check_available", "check_mode", "judge_tests_many",
           "run_python", "run_tests", "run_tests_many"]


class Result(NamedTuple):
    returncode: int | None  # None when it was stopped at the wall-clock limit
    stdout: str             # the first limits.output_bytes of each
    stderr: str
    timed_out: bool


def check_available(mode: str = "namespaces") -> None:
    """Raises SandboxUnavailable (or ValueError for an unknown mode) unless `mode` works here."""
    setup(mode, int(Limits().disk_bytes))


def run_python(source: str, stdin: str = "", limits: Limits = Limits(), mode: str = "namespaces") -> Result:
    """Runs `source` as __main__ in a sandbox, with `stdin` as its standard input; returns its bounded
    output and exit status (under bubblewrap a death by signal N reads as 128 + N)."""
    found = setup(mode, int(limits.disk_bytes))
    deadline = time.monotonic() + limits.wall_seconds
    proc = Sandboxed(found, source, None, (), limits, [], stdin=stdin.encode(), capture=True)
    try:
        out, timed_out = read_until_eof({"out": proc.stdout, "err": proc.stderr}, deadline,
                                        {"out": limits.output_bytes, "err": limits.output_bytes})
        if not timed_out and proc.wait(deadline) is None:
            timed_out = True  # closed its output but went on running
    finally:
        proc.kill()
    return Result(None if timed_out else proc.returncode, out["out"].decode("utf-8", "replace"),
                  out["err"].decode("utf-8", "replace"), timed_out)
