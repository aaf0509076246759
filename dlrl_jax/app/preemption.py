"""SIGTERM (a preemption, SLURM's warning before the time limit) at any phase of a run: the run saves
what it can and exits with PREEMPTED_EXIT, which launchers read as "requeue and resume". SIGINT (Ctrl-C)
is handled the same way (a second Ctrl-C stops at once, saving nothing more).

Light on purpose (no JAX import): the CLI installs the handler before anything heavy loads.
"""

from __future__ import annotations

import os
import signal
import threading

PREEMPTED_EXIT = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure; run the same command again
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def received_name() -> str:
    """The name of the stopping signal received last ("SIGTERM" when none): messages say which."""
    return StopFlag.received or "SIGTERM"


class TemporaryFailure(Exception):
    """The run cannot go on for a reason that passes (no threads, memory or file handles while reading a
    checkpoint): nothing was moved or dropped; the same command again continues. The CLI exits with
    PREEMPTED_EXIT, so a launcher requeues it like a preemption."""


class Preempted(BaseException):
    """The run stopped on SIGTERM after saving what it could; the message says what and how to go on.
    A BaseException, like KeyboardInterrupt: raised at start-up from the signal handler, it must not
    be swallowed by some library's `except Exception`."""


class StopFlag:
    """The SIGTERM and SIGINT handler of one run. While `immediate` (start-up: nothing to save yet) a SIGTERM
    raises Preempted at once; after `defer()` it only sets `set`, which the phases check between
    steps (an SFT step, an evaluation batch, an RL iteration), then save and raise Preempted."""

    received: str | None = None  # the name of the last stopping signal, for messages

    def __init__(self, command: str | None = None):
        """`command` (the CLI's, e.g. "train"): at start-up the process then ends at once with one line
        and PREEMPTED_EXIT (os._exit: an exception raised from a signal handler may land in a callback
        that swallows it with a traceback, such as XLA's garbage-collection hook). Without it (a library
        caller) the handler raises Preempted."""
        self.set = False
        self.immediate = True
        self.command = command
        self._previous = {}

    def __enter__(self):
        StopFlag.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and self.set and not self.immediate:  # Ctrl-C again: the user will not wait
            os.write(2, f"dlrl-jax: {name} again: stopping at once, without saving\n".encode())
            os._exit(INTERRUPTED_EXIT)
        StopFlag.received = name
        self.set = True
        if self.immediate:
            self.immediate = False  # once: the unwinding itself must not be interrupted again
            message = f"stopped by {name} during start-up, before anything was saved; run the same command again"
            if self.command is not None:
                os.write(2, f"dlrl-jax {self.command}: preempted: {message}\n".encode())
                os._exit(PREEMPTED_EXIT)
            raise Preempted(message)

    def defer(self) -> None:
        """From now on (the phases that can save, and the run's orderly end) a SIGTERM only sets the flag."""
        self.immediate = False

    def __exit__(self, *exc):
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}
