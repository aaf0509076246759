"""Reading what a sandbox writes: from pipe descriptors the trainer holds (never a file reopened by name,
so nothing the sandbox does to a path can block or redirect the read), bounded in bytes and in time."""

from __future__ import annotations

import os
import selectors
import time
from typing import Callable, Union


def read_until_eof(fds: dict[str, int], deadline: Union[float, Callable[[], float]],
                   caps: dict[str, int]) -> tuple[dict[str, bytes], bool]:
    """({name: first caps[name] bytes read}, timed_out) from every fd until all are at end of file or
    time.monotonic() reaches `deadline` (or, for a callable such as watch.Watch.remaining, until it returns
    0; it is asked again at least every time it says). Bytes past a cap are read and dropped, so a writer
    never blocks on a full pipe while the others are still being read. The fds stay open (the caller
    closes them)."""
    remaining_time = deadline if callable(deadline) else (lambda: deadline - time.monotonic())
    kept = {name: bytearray() for name in fds}
    with selectors.DefaultSelector() as selector:
        for name, fd in fds.items():
            selector.register(fd, selectors.EVENT_READ, name)
        while selector.get_map():
            remaining = remaining_time()
            if remaining <= 0:
                # what was written before the limit still counts (the reader itself may have been slow
                # to get here): take what is ready now, without waiting
                for _ in range(64):
                    if not selector.get_map() or not _read_ready(selector, 0, kept, caps):
                        break
                return {k: bytes(v) for k, v in kept.items()}, bool(selector.get_map())
            _read_ready(selector, remaining, kept, caps)
    return {k: bytes(v) for k, v in kept.items()}, False


def _read_ready(selector, timeout: float, kept: dict, caps: dict) -> bool:
    """Reads once from each fd that is ready within `timeout`; whether any was."""
    ready = selector.select(timeout)
    for key, _ in ready:
        chunk = os.read(key.fd, 65536)
        if not chunk:
            selector.unregister(key.fd)
            continue
        room = caps[key.data] - len(kept[key.data])
        if room > 0:
            kept[key.data] += chunk[:room]
    return bool(ready)
