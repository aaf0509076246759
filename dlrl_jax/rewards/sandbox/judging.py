"""Verdicts on test statements that the tested code cannot forge.

Each test of each completion gets two sandboxes, started together: the solution's, which runs the model's
code and then answers requests on its objects, and the judge's, which runs the test statement with the
solution's names bound to plain copies or `Remote` references (child_judge.py) and writes a verdict to a
pipe only the trainer reads. The two talk over a pair of pipes in the tagged-JSON format of child_wire.py;
no model code ever runs in the judge's process, and nothing the solution's process writes is read by the
trainer. A test that does not finish within its time limit (counted on its own clock: watch.py) or whose
sandbox holds more than the memory limit fails; so does anything unexpected.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from importlib import resources
from typing import NamedTuple, Sequence

from dlrl_jax.rewards.sandbox.channels import read_until_eof
from dlrl_jax.rewards.sandbox.isolation import Limits, Sandboxed, setup
from dlrl_jax.rewards.sandbox.watch import Watch, backstop_seconds

_PACKAGE = "dlrl_jax.rewards.sandbox"


class Verdict(NamedTuple):
    passed: bool
    reason: str  # "passed", or why not (for logs and tests; not a stable format)


def _source(name: str) -> str:
    return resources.files(_PACKAGE).joinpath(name).read_text()


def _programs() -> tuple[list, str, str]:
    return ([("child_wire", _source("child_wire.py"))],
            _source("child_solution.py") + "\nserve(PAYLOAD)\n",
            _source("child_judge.py") + "\njudge(PAYLOAD)\n")


def judge_tests_many(jobs: Sequence[tuple[str, Sequence[str]]], limits: Limits = Limits(),
                     mode: str = "namespaces", max_workers: int | None = None) -> list[list[Verdict]]:
    """For each (code, tests) job, one Verdict per test; every test of every job runs in parallel."""
    for i, (code, tests) in enumerate(jobs):
        if not isinstance(code, str) or isinstance(tests, str) or not all(isinstance(t, str) for t in tests):
            raise TypeError(f"jobs[{i}] must be (code: str, tests: list of str)")
    flat = [(code, test) for code, tests in jobs for test in tests]
    if not flat:
        return [[] for _ in jobs]
    found = setup(mode, int(limits.disk_bytes))
    modules, solution, judge = _programs()

    # a test mostly waits (process start-up, a sleeping or stuck solution), so more tests than cores run
    # at once; each sandbox's processes are bounded, which bounds what the hostile ones can take, and each
    # test's deadline runs on its own clock (watch.py), so their CPU use slows a neighbour but cannot fail it
    workers = max_workers or max(1, min(len(flat), 4 * (os.cpu_count() or 1), 64))
    backstop = backstop_seconds(limits.wall_seconds, limits.cpu_seconds, workers)

    def one(item):
        return _judge_one(found, modules, solution, judge, item[0], item[1], limits, backstop)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = iter(list(pool.map(one, flat)))
    return [[next(verdicts) for _ in tests] for _, tests in jobs]


def _judge_one(found, modules, solution_program, judge_program, code, test, limits, backstop) -> Verdict:
    backstop_at = time.monotonic() + backstop
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    verdict_r, verdict_w = os.pipe()
    child_ends = [requests_r, requests_w, replies_r, replies_w, verdict_w]
    started = []
    try:
        started.append(Sandboxed(found, solution_program, {"code": code, "requests": requests_r, "replies": replies_w,
                                                           "message_bytes": int(limits.message_bytes)},
                                 (requests_r, replies_w), limits, modules))
        started.append(Sandboxed(found, judge_program, {"test": test, "code": code, "requests": requests_w,
                                                        "replies": replies_r, "verdict": verdict_w,
                                                        "message_bytes": int(limits.message_bytes)},
                                 (requests_w, replies_r, verdict_w), limits, modules))
        for fd in child_ends:  # from here on the pipes belong to the two sandboxes alone
            os.close(fd)
        child_ends = []
        watch = Watch([proc.pid for proc in started], limits.wall_seconds, backstop_at, limits.cpu_seconds,
                      int(limits.memory_bytes))
        raw, timed_out = read_until_eof({"verdict": verdict_r}, watch.remaining, {"verdict": 65536})
    finally:
        for proc in started:
            proc.kill()
        for fd in child_ends + [verdict_r]:
            os.close(fd)
    try:  # the judge writes its verdict last: a whole one counts even if the judge had not yet exited
        verdict = json.loads(raw["verdict"])
        return Verdict(verdict["passed"] is True, str(verdict["reason"]))
    except (ValueError, KeyError, TypeError):
        if timed_out:
            return Verdict(False, watch.exceeded or f"no verdict within {limits.wall_seconds:g} s")
        return Verdict(False, "the judge gave no verdict")


def run_tests_many(jobs: Sequence[tuple[str, Sequence[str]]], limits: Limits = Limits(),
                   mode: str = "namespaces") -> list[list[bool]]:
    """For each (code, tests) job, whether each test passed; all tests of all jobs in parallel."""
    return [[v.passed for v in verdicts] for verdicts in judge_tests_many(jobs, limits, mode)]


def run_tests(code: str, tests: Sequence[str], limits: Limits = Limits(), mode: str = "namespaces") -> list[bool]:
    """Whether each test statement passes against `code` (one bool per test)."""
    return run_tests_many([(code, tests)], limits, mode)[0]
