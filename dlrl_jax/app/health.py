"""RL health guards: stop a run that has gone wrong, with a named reason and a resumable checkpoint,
instead of training on.

`run.halt_on` is a comma-separated list of conditions on an iteration's metrics (metrics.jsonl keys),
each `METRIC>BOUND` or `METRIC<BOUND`; `run.halt_patience` is how many iterations in a row a condition
must hold before the run halts (one bad batch is noise; a collapse persists). A metric whose value is
not finite (NaN, inf) meets every condition on it. Useful conditions:

    first_ratio_dev>0.1    the first optimizer step's mean |ratio - 1|: the trainer's log-probs of the
                           rollout disagree with the rollout's own (or the old-policy pass's) -- a
                           sampler/trainer mismatch, the silent failure reported for ports of SPG/ESPO
    kl>0.5                 the policy ran away from the reference
    ratio>2                the importance ratio exploded
    reward_mean<0.01       reward collapse
    skipped>0              the update was refused: a non-finite loss or gradient
    zero_variance_fraction>0.9   most groups carry no signal (their rewards all equal)

The counters start afresh on resume: a halted run resumed with the same guards runs `halt_patience`
iterations before it can halt again (relax `run.halt_on` with --set on the resume to go on)."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re

_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*([<>])\s*([-+0-9.eE]+)\s*$")


class GuardError(ValueError):
    """A malformed `run.halt_on` condition, or one naming a metric the run does not report."""


class Halted(RuntimeError):
    """A guard held for `run.halt_patience` iterations; the message names it, the values and the checkpoint."""


@dataclasses.dataclass(frozen=True)
class Guard:
    metric: str
    above: bool      # True: METRIC > bound trips; False: METRIC < bound
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {'>' if self.above else '<'} {self.bound:g}"

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return True
        return value > self.bound if self.above else value < self.bound


def parse_guards(spec: str) -> tuple[Guard, ...]:
    """`run.halt_on` -> guards; a malformed condition is a GuardError naming it."""
    guards = []
    for part in (p for p in spec.split(",") if p.strip()):
        match = _CONDITION.match(part)
        bound = None
        if match:
            try:
                bound = float(match.group(3))
            except ValueError:
                pass
        if bound is None or not math.isfinite(bound):
            raise GuardError(f"run.halt_on condition {part.strip()[:80]!r} is not METRIC>NUMBER or METRIC<NUMBER "
                              "(e.g. run.halt_on=kl>0.5,reward_mean<0.01; the metrics are metrics.jsonl's keys)")
        guards.append(Guard(match.group(1), match.group(2) == ">", bound))
    return tuple(guards)


class HaltWatch:
    """Counts, per guard, the iterations in a row that met it; `observe` says when one has held long enough."""

    def __init__(self, guards: tuple[Guard, ...], patience: int):
        self.guards, self.patience = guards, max(1, patience)
        self._streak = {g: [] for g in guards}

    def observe(self, iteration: int, metrics: dict) -> str | None:
        """The reason to halt after `iteration` (its metrics), or None."""
        for guard in self.guards:
            if guard.metric not in metrics:
                available = ", ".join(sorted(k for k, v in metrics.items() if _is_number(v)))
                raise GuardError(f"run.halt_on names metric {guard.metric!r}, which this run does not report; "
                                  f"use one of: {available}")
            value = float(metrics[guard.metric])
            streak = self._streak[guard]
            if guard.holds(value):
                streak.append((iteration, value))
            else:
                streak.clear()
            if len(streak) >= self.patience:
                values = ", ".join(f"{v:.4g}" for _, v in streak[-self.patience:])
                first = streak[-self.patience][0]
                return (f"{guard} for {self.patience} iteration(s) in a row (iterations {first}-{iteration}: "
                        f"{values})")
        return None


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
