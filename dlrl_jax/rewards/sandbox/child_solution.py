"""The solution side, run in its own sandbox after child_wire.py: runs the model's code, sends the judge
the names its test uses (plain values, module names, references), then answers the judge's requests
(call, attribute, item, iterate, length, next) on the solution's objects with plain values. Nothing here is trusted: the model's code shares this process and may rewrite any of it; the
judge treats every byte that comes back as data.

PAYLOAD: {"code": str, "requests": fd, "replies": fd, "message_bytes": int}.
"""

import builtins
import itertools
import types

try:
    from .child_wire import decode, encode, recv, send
except ImportError:  # inside the sandbox the wire module is loaded as a top-level module
    from child_wire import decode, encode, recv, send

MAX_ITEMS = 1_000_000


def serve(payload):
    requests, replies, limit = payload["requests"], payload["replies"], payload["message_bytes"]
    objects = []

    def handle(obj):
        objects.append(obj)
        return len(objects) - 1

    namespace = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(compile(payload["code"], "solution.py", "exec"), namespace)
    except BaseException as e:  # noqa: BLE001 -- any failure of the model's code is reported, not raised
        send(replies, {"error": "%s: %s" % (type(e).__name__, _text(e))})
        return
    try:  # the judge's first request: the names its test uses (so a big table nobody reads stays here)
        wanted = recv(requests, limit)["names"]
    except (EOFError, KeyError, TypeError):
        return
    modules, values = [], {}
    for name, value in list(namespace.items()):
        if (name.startswith("__") and name.endswith("__")) or name not in wanted:
            continue
        if isinstance(value, types.ModuleType):
            modules.append(name)
            continue
        try:
            values[name] = encode(value, handle)
        except Exception:  # noqa: BLE001 -- a name that cannot travel is left out
            continue
    send(replies, {"modules": modules, "values": values})
    while True:
        try:
            request = recv(requests, limit)
        except EOFError:
            return
        try:
            reply = {"value": encode(_perform(request, objects), handle)}
        except BaseException as e:  # noqa: BLE001 -- the model's exception goes back by class name
            reply = {"raised": type(e).__name__, "message": _text(e)}
        send(replies, reply)


def _perform(request, objects):
    def remote(n):
        return objects[n]

    target = objects[request["target"]]
    op = request["op"]
    if op == "call":
        args = decode(request["args"], remote)
        kwargs = {k: decode(v, remote) for k, v in request["kwargs"]}
        return target(*args, **kwargs)
    if op == "getattr":
        return getattr(target, request["name"])
    if op == "getitem":
        return target[decode(request["key"], remote)]
    if op == "iter":
        items = list(itertools.islice(iter(target), MAX_ITEMS + 1))
        if len(items) > MAX_ITEMS:
            raise OverflowError("more than %d items" % MAX_ITEMS)
        return items
    if op == "len":
        return len(target)
    if op == "next":
        return next(target)
    raise ValueError("unknown request %r" % op)


def _text(error):
    try:
        return str(error)[:200]
    except BaseException:  # noqa: BLE001
        return "?"
