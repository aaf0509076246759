"""The judge side, run in a sandbox of its own (no model code ever runs in this process): executes one
test statement with the solution's names bound to plain copies of its data and `Remote` references to its
functions and objects, and writes the verdict to a descriptor only the trainer reads. The test passes iff
it runs to its end without an exception.

Every comparison, `assert`, `abs`, `math.isclose`, `set(...)` of the test runs here on plain builtin
values, so printing, exiting, patching builtins or returning an object with a rigged `__eq__` in the
solution's process cannot make a test pass. What stays opaque: a `Remote` refuses comparison, truth
value and hashing (the test fails); it forwards calls, attributes, items, iteration (as a list) and len.
Names that are builtins (`abs`, `sorted`, ...) are never taken from the solution; a module name is
imported here, and so is a pure standard-library module's name that the test uses as a module (so a
fake `math` object cannot answer `math.isclose`); a name that the solution's source takes from a pure
standard-library module (`from math import isclose`, bound nowhere else in the source) is taken from that
module here, decided by parsing the source, never by a label (`__module__`, `__qualname__`) of the
solution's object. Other names the test takes from the solution are the solution's.

Conservative by design (such a test fails even for a right solution): comparing, hashing or testing the
truth of a solution object that is not plain data (or a subclass of a builtin type); a test passing
something other than plain data or the solution's own objects (a lambda, a class of the test) to the
solution; a test that expects the solution to change a list or dict argument in place (the solution gets
a copy); a solution function named like a builtin (the test gets the builtin).

PAYLOAD: {"test": str, "code": str (the solution's source: parsed here, never run), "requests": fd,
"replies": fd, "verdict": fd, "message_bytes": int}.
"""

import ast
import builtins
import importlib
import json
import os
import types

try:
    from .child_wire import WireError, decode, encode, recv, send
except ImportError:  # inside the sandbox the wire module is loaded as a top-level module
    from child_wire import WireError, decode, encode, recv, send

# Modules whose functions and classes the judge may take in place of the solution's same-named ones: they
# compute, they do not execute code, touch files or reach the judge's state.
PURE_MODULES = frozenset({"math", "cmath", "statistics", "fractions", "decimal", "heapq", "bisect", "collections",
                          "itertools", "functools", "re", "string", "copy", "numbers", "datetime", "textwrap",
                          "unicodedata", "random", "array"})


class Remote:
    """An object that lives in the solution's process."""

    __slots__ = ("_id", "_link")

    def __init__(self, number, link):
        object.__setattr__(self, "_id", number)
        object.__setattr__(self, "_link", link)

    def __call__(self, *args, **kwargs):
        return self._link.ask({"op": "call", "target": self._id, "args": self._link.encode(list(args)),
                               "kwargs": [[k, self._link.encode(v)] for k, v in kwargs.items()]})

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._link.ask({"op": "getattr", "target": self._id, "name": name})

    def __getitem__(self, key):
        return self._link.ask({"op": "getitem", "target": self._id, "key": self._link.encode(key)})

    def __iter__(self):
        items = self._link.ask({"op": "iter", "target": self._id})
        if type(items) is not list:
            raise TypeError("the solution's iterator did not give a list")
        return iter(items)

    def __next__(self):
        return self._link.ask({"op": "next", "target": self._id})

    def __len__(self):
        n = self._link.ask({"op": "len", "target": self._id})
        if type(n) is not int:
            raise TypeError("the solution's len() is not an int")
        return n

    def _opaque(self, *args):
        raise TypeError("an object of the solution (not plain data) cannot be compared, hashed or tested for "
                        "truth in a test")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = _opaque

    def __setattr__(self, name, value):
        raise TypeError("objects of the solution are read-only in a test")

    def __repr__(self):
        return "<object %d of the solution>" % self._id


def _with_attributes(base):
    """A subclass of builtin `base` for an instance of the solution's subclass of it (a namedtuple, a
    Counter, an IntEnum): equality, hashing and truth are `base`'s own, on the plain value; any other
    attribute is the solution object's."""
    def __getattr__(self, name):
        if name.startswith("__") or "_remote" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["_remote"], name)
    return type(base.__name__, (base,), {"__getattr__": __getattr__, "__module__": "solution"})


_WITH_ATTRIBUTES = {base: _with_attributes(base)
                    for base in (int, float, str, bytes, tuple, frozenset, list, dict, set)}
_IMMUTABLE = frozenset(_WITH_ATTRIBUTES[base] for base in (int, float, str, bytes, tuple, frozenset))


class _Link:
    def __init__(self, requests, replies, limit):
        self.requests, self.replies, self.limit = requests, replies, limit

    def remote(self, number):
        return Remote(number, self)

    def remote_plain(self, number, base):
        cls = _WITH_ATTRIBUTES.get(type(base))
        if cls is None:
            return base
        value = cls(base)
        value.__dict__["_remote"] = Remote(number, self)
        return value

    def encode(self, value):
        """Plain data as itself; the solution's objects (and unchanged copies of them) by reference."""
        def refer(obj):
            if type(obj) is Remote:
                return obj._id
            if type(obj) in _IMMUTABLE:
                return obj.__dict__["_remote"]._id
            return None
        return encode(value, None, 0, refer)

    def decode(self, data):
        return decode(data, self.remote, 0, self.remote_plain)

    def ask(self, request):
        send(self.requests, request)
        reply = recv(self.replies, self.limit)
        if type(reply) is dict and "value" in reply:
            return self.decode(reply["value"])
        if type(reply) is dict and type(reply.get("raised")) is str:
            raise _exception(reply["raised"], reply.get("message"))
        raise WireError("a malformed reply from the solution")


def _exception(name, message):
    """The builtin exception class the solution raised (by name), else RuntimeError."""
    text = "in the solution: %s" % (message if type(message) is str else "")[:200]
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(text)
        except Exception:  # noqa: BLE001 -- classes such as UnicodeDecodeError need more arguments
            pass
    return RuntimeError("%s %s" % (name[:60], text))


def _binding_names(tree):
    """Every name the module binds anywhere, once per binding (assignments, definitions, imports, loop and
    `with` targets, `global`/`nonlocal`, exception and match names), counted by the judge from the source."""
    names = []
    for node in ast.walk(tree):
        if type(node) is ast.Name and type(node.ctx) is not ast.Load:
            names.append(node.id)
        elif type(node) in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            names.append(node.name)
        elif type(node) is ast.alias:
            names.append((node.asname or node.name).split(".")[0])
        elif type(node) in (ast.Global, ast.Nonlocal):
            names.extend(node.names)
        elif type(node) is ast.ExceptHandler and node.name:
            names.append(node.name)
        elif type(node).__name__ in ("MatchAs", "MatchStar") and getattr(node, "name", None):
            names.append(node.name)
        elif type(node).__name__ == "MatchMapping" and getattr(node, "rest", None):
            names.append(node.rest)
    return names


def _pure_imports(code):
    """{name: the judge's own function or class} for each name that the solution's source binds exactly once,
    by a top-level `from M import name` of a pure module M (`import *` never counts). Found by parsing the
    source here, never from anything the solution's process says about its objects: a label such as
    `__module__`/`__qualname__` is the solution's to forge, and only a direct public attribute of M is taken
    (no attribute chains out of M to what it imported, such as fractions.operator or re.sys)."""
    try:
        tree = compile(code, "solution.py", "exec", ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return {}
    bound = {}
    for name in _binding_names(tree):
        bound[name] = bound.get(name, 0) + 1
    found = {}
    for node in tree.body:
        if type(node) is not ast.ImportFrom or node.level or node.module not in PURE_MODULES:
            continue
        for alias in node.names:
            name = alias.asname or alias.name
            if alias.name == "*" or alias.name.startswith("_") or bound.get(name) != 1:
                continue
            try:
                value = getattr(importlib.import_module(node.module), alias.name)
            except Exception:  # noqa: BLE001 -- not a name of that module here: the solution's own stays
                continue
            if not isinstance(value, types.ModuleType):
                found[name] = value
    return found


def _bind(hello, referenced, used_as_module, link, pure_imports):
    """The test's namespace: the solution's names, minus builtins, as plain copies or references; a
    module of the solution, or a pure module's name that the test uses as `name.attribute` (a test that
    relies on the solution's `import math`), is the judge's own import of that module; a name the source
    takes from a pure module (`from math import isclose`) is the judge's own (see _pure_imports)."""
    namespace = {"__name__": "__test__", "__builtins__": builtins}
    usable = [n for n in referenced if not hasattr(builtins, n)]
    modules = hello.get("modules") if type(hello.get("modules")) is list else []
    values = hello.get("values") if type(hello.get("values")) is dict else {}
    for name in usable:
        if name in modules or (name in PURE_MODULES and name in used_as_module):
            try:
                namespace[name] = importlib.import_module(name)
            except Exception:  # noqa: BLE001 -- a module the judge lacks stays unbound (NameError)
                pass
        elif name in pure_imports:
            namespace[name] = pure_imports[name]
        elif name in values:
            try:
                namespace[name] = link.decode(values[name])
            except Exception:  # noqa: BLE001 -- a value that is not plain data stays unbound
                pass
    return namespace


def _verdict(payload):
    try:
        tree = compile(payload["test"], "<test>", "exec", ast.PyCF_ONLY_AST)
    except SyntaxError as e:
        return False, "the test does not parse: %s" % e
    referenced = {node.id for node in ast.walk(tree) if type(node) is ast.Name and not node.id.startswith("__")}
    used_as_module = {node.value.id for node in ast.walk(tree)
                      if type(node) is ast.Attribute and type(node.value) is ast.Name}
    link = _Link(payload["requests"], payload["replies"], payload["message_bytes"])
    try:
        send(link.requests, {"names": sorted(referenced)})
    except OSError:  # the solution is gone already; its last words may still be in the pipe
        pass
    try:
        hello = recv(link.replies, link.limit)
    except (EOFError, WireError, OSError) as e:
        return False, "the solution ended before it started: %s" % e
    if type(hello) is not dict:
        return False, "the solution sent a malformed greeting"
    if "error" in hello:
        return False, "the solution failed: %s" % str(hello["error"])[:200]
    namespace = _bind(hello, referenced, used_as_module, link, _pure_imports(payload["code"]))
    try:
        exec(compile(tree, "<test>", "exec"), namespace)
    except BaseException as e:  # noqa: BLE001 -- any exception, SystemExit included, fails the test
        return False, "%s: %s" % (type(e).__name__, str(e)[:200])
    return True, "passed"


def judge(payload):
    passed, reason = _verdict(payload)
    data = json.dumps({"passed": passed, "reason": reason[:300]}).encode("ascii")
    while data:
        data = data[os.write(payload["verdict"], data):]
