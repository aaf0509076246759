"""Plain values across the sandbox boundary: a tagged JSON that carries builtin data and nothing else.

This file runs inside the sandboxes (its source is sent in, Python 3.8+, standard library only) and is
importable on the host for tests. Never pickle: decoding builds only exact builtin values (and, on the
judge's side, opaque `Remote` references to the solution's other objects), so nothing the solution
sends can carry its own `__eq__`, `__bool__` or `__hash__` into the judge.

JSON null, true/false, strings, integers below 2**53 and finite floats stand for themselves; every other
value is a list whose first item is a tag:
  ["L", [..]] list  ["T", [..]] tuple  ["S", [..]] set  ["Z", [..]] frozenset  ["D", [[k, v], ..]] dict
  ["I", hex] big int  ["f", "nan"|"inf"|"-inf"] float  ["c", re, im] complex  ["b", hex] bytes
  ["a", hex] bytearray  ["R", start, stop, step] range  ["Q", [..], maxlen] deque  ["H", n] object n
  ["P", n, base] object n, an instance of a subclass of a builtin type, with its builtin value `base`
Subclasses of the builtin containers and scalars (Counter, OrderedDict, namedtuple, IntEnum, ...) travel
as their builtin base, read through the base type's own methods so an override cannot change them; the
judge compares that base value, and reaches the object itself only for its other attributes.

Framing: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
"""

import collections
import json
import math
import os
import struct

MAX_DEPTH = 100
_SMALL_INT = 2 ** 53


class WireError(Exception):
    """A message that is not a well-formed plain value."""


def encode(value, handle=None, depth=0, refer=None):
    """A JSON-able form of `value`; `handle(obj) -> int` names objects that are not plain data (None:
    such objects are an error); `refer(obj) -> int | None`, asked first, names objects that stand for
    one on the other side."""
    if depth > MAX_DEPTH:
        raise WireError("value nested deeper than %d levels" % MAX_DEPTH)
    t = type(value)
    if refer is not None and t not in _EXACT:
        n = refer(value)
        if n is not None:
            return ["H", n]
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if -_SMALL_INT < value < _SMALL_INT else ["I", format(value, "x")]
    if t is float:
        return value if math.isfinite(value) else ["f", repr(value)]
    nested = depth + 1
    if t is list:
        return ["L", [encode(v, handle, nested, refer) for v in value]]
    if t is tuple:
        return ["T", [encode(v, handle, nested, refer) for v in value]]
    if t is dict:
        return ["D", [[encode(k, handle, nested, refer), encode(v, handle, nested, refer)] for k, v in value.items()]]
    if t is set or t is frozenset:
        return ["S" if t is set else "Z", [encode(v, handle, nested, refer) for v in value]]
    if t is complex:
        return ["c", encode(value.real), encode(value.imag)]
    if t is bytes or t is bytearray:
        return ["b" if t is bytes else "a", value.hex()]
    if t is range:
        return ["R", encode(value.start), encode(value.stop), encode(value.step)]
    if t is collections.deque:
        return ["Q", [encode(v, handle, nested, refer) for v in value], value.maxlen]
    base = _builtin_base(value)
    if base is not None:
        plain = encode(base, handle, depth, refer)
        return plain if handle is None else ["P", handle(value), plain]
    if handle is None:
        raise WireError("%s is not plain data" % t.__name__)
    return ["H", handle(value)]


_EXACT = frozenset({type(None), bool, int, float, str, list, tuple, dict, set, frozenset, complex, bytes, bytearray,
                    range, collections.deque})


def _builtin_base(value):
    """The exact builtin value inside an instance of a builtin type's subclass, or None."""
    for base, read in ((int, int.__int__), (float, float.__float__), (str, str.__str__), (list, list.copy),
                       (dict, dict.copy), (set, set.copy), (frozenset, frozenset.copy),
                       (tuple, lambda v: tuple(tuple.__iter__(v))), (bytes, lambda v: bytes.__bytes__(v))):
        if isinstance(value, base):
            return read(value)
    return None


def decode(data, remote=None, depth=0, remote_plain=None):
    """The value `data` (a JSON-decoded message) stands for; `remote(n)` gives object n (None: error);
    `remote_plain(n, base)` gives object n with builtin value `base` (None: `base` itself)."""
    if depth > MAX_DEPTH:
        raise WireError("value nested deeper than %d levels" % MAX_DEPTH)
    t = type(data)
    if data is None or t is bool or t is str or t is int:
        return data
    if t is float:
        return data
    if t is not list or not data or type(data[0]) is not str:
        raise WireError("not a plain value: %.80r" % (data,))
    tag, rest, nested = data[0], data[1:], depth + 1
    if tag in ("L", "T", "S", "Z", "Q") and rest and type(rest[0]) is list:
        items = [decode(v, remote, nested, remote_plain) for v in rest[0]]
        if tag == "L" and len(rest) == 1:
            return items
        if tag == "T" and len(rest) == 1:
            return tuple(items)
        if tag == "S" and len(rest) == 1:
            return set(items)
        if tag == "Z" and len(rest) == 1:
            return frozenset(items)
        if tag == "Q" and len(rest) == 2 and (rest[1] is None or type(rest[1]) is int):
            return collections.deque(items, rest[1])
    if tag == "D" and len(rest) == 1 and type(rest[0]) is list:
        out = {}
        for pair in rest[0]:
            if type(pair) is not list or len(pair) != 2:
                raise WireError("a dict entry is not a [key, value] pair")
            out[decode(pair[0], remote, nested, remote_plain)] = decode(pair[1], remote, nested, remote_plain)
        return out
    if len(rest) == 1 and type(rest[0]) is str:
        if tag == "I":
            return int(rest[0], 16)
        if tag == "f" and rest[0] in ("nan", "inf", "-inf"):
            return float(rest[0])
        if tag == "b":
            return bytes.fromhex(rest[0])
        if tag == "a":
            return bytearray.fromhex(rest[0])
    if tag == "c" and len(rest) == 2:
        re, im = decode(rest[0], None, nested), decode(rest[1], None, nested)
        if type(re) is float and type(im) is float:
            return complex(re, im)
    if tag == "R" and len(rest) == 3:
        bounds = [decode(v, None, nested) for v in rest]
        if all(type(b) is int for b in bounds) and bounds[2] != 0:
            return range(*bounds)
    if tag == "H" and len(rest) == 1 and type(rest[0]) is int and remote is not None:
        return remote(rest[0])
    if tag == "P" and len(rest) == 2 and type(rest[0]) is int:
        base = decode(rest[1], remote, nested, remote_plain)
        return base if remote_plain is None else remote_plain(rest[0], base)
    raise WireError("not a plain value: %.80r" % (data,))


def dumps(message):
    """Bytes of a JSON-able message (the output of `encode`, in a dict of plain fields)."""
    return json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def loads(raw):
    try:
        return json.loads(raw.decode("ascii"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise WireError("unreadable message: %s" % str(e)[:80])


def _no_constant(name):
    raise WireError("JSON constant %s is not allowed" % name)


def send(fd, message):
    data = dumps(message)
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def recv(fd, limit):
    """The next message on `fd`; WireError past `limit` bytes, EOFError when the writer is gone."""
    size = struct.unpack(">I", _read_exactly(fd, 4))[0]
    if size > limit:
        raise WireError("a message of %d bytes is over the limit of %d" % (size, limit))
    return loads(_read_exactly(fd, size))


def _read_exactly(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
