"""Reading what a sandbox writes: from pipe descriptors the trainer holds (never a file reopened by name,
so nothing the sandbox does to a path can block or redirect the read), bounded in bytes and in time."""

from __future__ import annotations

import os
import selectors
import time


def read_until_eof(fds: dict[str, int], deadline: float, caps: dict[str, int]) -> tuple[dict[str, bytes], bool]:
    """({name: first caps[name] bytes read}, timed_out) from every fd until all are at end of file or
    time.monotonic() reaches `deadline`. Bytes past a cap are read and dropped, so a writer never blocks
    on a full pipe while the others are still being read. The fds stay open (the caller closes them)."""
    kept = {name: bytearray() for name in fds}
    with selectors.DefaultSelector() as selector:
        for name, fd in fds.items():
            selector.register(fd, selectors.EVENT_READ, name)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {k: bytes(v) for k, v in kept.items()}, True
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                room = caps[key.data] - len(kept[key.data])
                if room > 0:
                    kept[key.data] += chunk[:room]
    return {k: bytes(v) for k, v in kept.items()}, False
