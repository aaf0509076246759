"""The code sandbox: its wire format, what a sandboxed program can see and do, its limits, and verdicts
against an independent oracle (the same statements run by plain `exec` on honest code)."""

import collections
import concurrent.futures
import dataclasses
import enum
import json
import os
import re
import socket
import time
import uuid

import pytest

from dlrl_jax import rewards, tasks
from dlrl_jax.data import readers
from dlrl_jax.rewards.sandbox import (Limits, SandboxUnavailable, check_available, isolation, judge_tests_many,
                                      run_python, run_tests, run_tests_many)
from dlrl_jax.rewards.sandbox import child_wire as wire

FAST = Limits(wall_seconds=3.0, cpu_seconds=2, memory_bytes=256 * 2**20)
# honest code only (nothing sleeps or spins): a wall limit that start-up on a loaded machine cannot reach
ROOMY = Limits(wall_seconds=20.0, cpu_seconds=2, memory_bytes=256 * 2**20)


def _round_trip(value, handle=None, remote=None):
    return wire.decode(wire.loads(wire.dumps(wire.encode(value, handle))), remote)


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**53, -(2**200) + 3, 1.5, -0.0, float("inf"), float("-inf"), 1e-320, "", "é\x00\ud800",
    b"\x00\xff", bytearray(b"ab"), 2 + 3j, [1, [2, (3,)]], (), (1, "a", None), {1, 2}, frozenset({"x"}),
    {1: "a", (2, 3): [4], "k": {5: None}}, range(2, 11, 3), collections.deque([1, 2], 5), [[]] * 3])
def test_wire_round_trip_keeps_values_and_exact_types(value):
    back = _round_trip(value)
    assert back == value and type(back) is type(value)
    if isinstance(value, float) and value == 0:
        assert str(back) == str(value)  # -0.0 keeps its sign


def test_wire_nan_and_nested_exact_types():
    assert str(_round_trip(float("nan"))) == "nan"
    back = _round_trip({"t": (1, [2.5, {3}])})
    assert type(back["t"]) is tuple and type(back["t"][1]) is list and type(back["t"][1][1]) is set


def test_wire_subclasses_travel_as_their_builtin_base():
    class Colour(enum.IntEnum):
        RED = 3

    class Rigged(int):
        def __eq__(self, other):
            return True
        __hash__ = int.__hash__

    class Items(list):
        def __iter__(self):
            return iter([99])

    Pair = collections.namedtuple("Pair", "a b")
    cases = [(collections.Counter("aab"), {"a": 2, "b": 1}), (collections.OrderedDict(x=1), {"x": 1}),
             (Pair(1, 2), (1, 2)), (Colour.RED, 3), (Rigged(5), 5), (Items([1, 2]), [1, 2])]
    for value, plain in cases:
        back = _round_trip(value)
        assert back == plain and type(back) is type(plain)


def test_wire_refuses_what_is_not_plain_data():
    with pytest.raises(wire.WireError):
        wire.encode(object())
    for bad in ({"a": 1}, ["?", 1], ["L"], ["H", 0], ["I", 5], ["f", "1.0"], ["R", 1, 2, 0], [], "x"):
        data = wire.dumps(bad) if bad != "x" else b"NaN"
        with pytest.raises(wire.WireError):
            wire.decode(wire.loads(data))
    deep = 1
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.encode(deep)
    seen = []
    back = _round_trip([object()], handle=lambda o: seen.append(o) or 7, remote=lambda n: ("remote", n))
    assert back == [("remote", 7)] and len(seen) == 1


# An honest solution and the statements a dataset may use; the oracle is plain Python running both.
SOLUTION = '''
import collections, math
from math import isclose
Point = collections.namedtuple("Point", "x y")
LIMIT = 3
def add(a, b):
    return a + b
def stats(xs):
    return {"mean": sum(xs) / len(xs), "max": max(xs)}
def letters(s):
    return collections.Counter(s)
def pairs(n):
    return [(i, i * i) for i in range(n)]
def gen(n):
    return (i for i in range(n))
def mid(p, q):
    return Point((p.x + q.x) / 2, (p.y + q.y) / 2)
def root(x):
    if x < 0:
        raise ValueError("negative")
    return math.sqrt(x)
class Stack:
    def __init__(self):
        self.items = []
    def push(self, x):
        self.items.append(x)
        return len(self.items)
    def pop(self):
        return self.items.pop()
'''
STATEMENTS = [
    "assert add(1, 2) == 3", "assert add(1, 2) == 4", "assert add('a', 'b') == 'ab'",
    "assert add((1,), (2,)) == (1, 2)",
    "assert abs(add(0.1, 0.2) - 0.3) < 1e-9", "import math\nassert math.isclose(add(0.1, 0.2), 0.3)",
    "assert isclose(root(2) ** 2, 2)", "assert add(1, -1)", "assert not add(1, -1)",
    "assert set(add([1], [2, 2])) == {1, 2}", "assert sorted(add([3], [1])) == [1, 3]",
    "assert stats([1, 2, 3]) == {'mean': 2.0, 'max': 3}", "assert letters('aab') == {'a': 2, 'b': 1}",
    "assert letters('aab')['a'] == 2", "assert pairs(3) == [(0, 0), (1, 1), (2, 4)]",
    "assert list(gen(3)) == [0, 1, 2]",
    "assert mid(Point(0, 0), Point(2, 4)) == (1.0, 2.0)", "assert mid(Point(0, 0), Point(2, 4)).y == 2.0",
    "assert LIMIT == 3", "try:\n    root(-1)\n    assert False\nexcept ValueError:\n    pass",
    "s = Stack()\nassert s.push(5) == 1\nassert s.push(6) == 2\nassert s.pop() == 6",
    "def check(candidate):\n    for i in range(20):\n        assert candidate(i, i) == 2 * i\n"
    "    assert candidate(-1, 1) == 0\ncheck(add)",
    "def check(candidate):\n    assert candidate(1, 1) == 3\ncheck(add)", "assert all(add(i, 1) > i for i in range(5))",
    "assert missing_function(1) == 1", "assert add(1, 2) == 3\nassert add(2, 2) == 5", "assert add(1,",
    "assert math.sqrt(4) == root(4)", "assert collections.Counter('ab') == letters('ba')",
]


def _oracle(code, statement):
    namespace = {}
    try:
        exec(code, namespace)
        exec(statement, namespace)
        return True
    except Exception:  # noqa: BLE001
        return False


def test_verdicts_agree_with_plain_python_on_honest_code():
    expected = [_oracle(SOLUTION, s) for s in STATEMENTS]
    assert 0 < sum(expected) < len(expected)
    got = judge_tests_many([(SOLUTION, STATEMENTS)], ROOMY)[0]
    assert [v.passed for v in got] == expected, [(s, v) for s, v, e in zip(STATEMENTS, got, expected) if v.passed != e]


# slow (30 s): tests/data/test_readers.py runs the shipped solutions in the suite
@pytest.mark.slow
def test_shipped_mbpp_solutions_pass_all_their_tests_and_shuffled_ones_none():
    records = tasks.read_records(readers.packaged_file("mbpp_mini.jsonl"), "code")
    assert len(records) == 20 and all(r["solution"] for r in records)
    shuffled = [(records[(i + 1) % len(records)]["solution"], r["tests"]) for i, r in enumerate(records)]
    results = run_tests_many([(r["solution"], r["tests"]) for r in records] + shuffled, ROOMY)
    assert results[:20] == [[True] * len(r["tests"]) for r in records]
    assert not any(any(r) for r in results[20:])


def test_pure_functions_are_taken_from_the_source_never_from_a_label():
    """Finding 16: a wrong `gcd`/`add` labelled as the standard library's (`__module__`, `__qualname__`) scored
    1.0. The judge now takes a pure module's function only where the source itself imports it, once."""
    tests = ["assert gcd(12, 18) == 6", "assert gcd(7, 5) == 1"]
    cases = {
        "imports it": "from math import gcd\n",
        "imports it under another name": "from math import gcd as g\ndef gcd(a, b):\n    return g(a, b)\n",
        "labels a wrong one": "def gcd(a, b):\n    return 0\ngcd.__module__ = 'math'\ngcd.__qualname__ = 'gcd'\n",
        "chains out of a pure module": "def gcd(a, b):\n    return 0\ngcd.__module__ = 'fractions'\n"
                                       "gcd.__qualname__ = 'math.gcd'\n",
        "imports it, then redefines it": "from math import gcd\ndef gcd(a, b):\n    return 0\n",
        "imports it, then reassigns it": "from math import gcd\ngcd = lambda a, b: 0\n",
        "imports it inside a function": "def gcd(a, b):\n    from math import gcd\n    return 0\n",
    }
    expected = {name: [_oracle(code, t) for t in tests] for name, code in cases.items()}
    assert [all(e) for e in expected.values()] == [True, True, False, False, False, False, False]
    got = run_tests_many(list((code, tests) for code in cases.values()), ROOMY)
    assert dict(zip(cases, got)) == expected


def test_run_python_sees_only_its_own_world(tmp_path):
    """A program in the sandbox: no host network (a listening host socket gets no connection), its own
    pid namespace, a private writable /sandbox and /tmp, nothing else writable, none of the trainer's
    environment, and no way to make a new user namespace."""
    canary = uuid.uuid4().hex
    os.environ["DLRL_SANDBOX_CANARY"] = canary  # inherited by nothing: the sandbox gets a fresh environment
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.chmod(tmp_path, 0o777)
    os.chmod(victim, 0o666)
    program = f'''
import ctypes, json, os, socket
facts = {{"uid": os.getuid(), "pid": os.getpid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
         "root": sorted(os.listdir("/")), "env": dict(os.environ), "cwd": os.getcwd()}}
try:
    socket.create_connection(("127.0.0.1", {server.getsockname()[1]}), timeout=1)
    facts["connect"] = "connected"
except OSError as e:
    facts["connect"] = e.errno
writes = {{}}
for path in ("/sandbox/ok", "/tmp/ok", "/usr/x", "/etc/x", "/dev/x", "/dev/shm/x", "/proc/x", {str(victim)!r},
             {str(tmp_path / "new.txt")!r}, "/x"):
    try:
        open(path, "w").write("x")
        writes[path] = "written"
    except OSError as e:
        writes[path] = e.errno
facts["writes"] = writes
facts["unshare"] = ctypes.CDLL(None).unshare(0x10000000)
facts["unshare_mounts"] = ctypes.CDLL(None).unshare(0x20000)
facts["caps"] = [line.split()[1] for line in open("/proc/self/status") if line.startswith("Cap")]
print(json.dumps(facts))
'''
    r = run_python(program, limits=FAST)
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()
    assert facts["connect"] in (111, 101, 113)  # refused / unreachable inside its own network namespace
    assert facts["pid"] < 10 and len(facts["pids"]) <= 3  # bwrap's init, itself (and a thread)
    assert canary not in json.dumps(facts) and set(facts["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}
    assert facts["cwd"] == "/sandbox" and not any(p in facts["root"] for p in ("work", "root", "home", "var"))
    assert facts["writes"]["/sandbox/ok"] == facts["writes"]["/tmp/ok"] == "written"
    assert all(v != "written" for k, v in facts["writes"].items() if k not in ("/sandbox/ok", "/tmp/ok"))
    assert victim.read_text() == "precious" and sorted(os.listdir(tmp_path)) == ["victim.txt"]
    assert facts["unshare"] == -1 and facts["unshare_mounts"] == -1
    # bwrap lends CAP_SYS_ADMIN for mounting the bounded tmpfs; the program gets none of it
    assert len(facts["caps"]) == 5 and all(int(v, 16) == 0 for v in facts["caps"])
    if os.geteuid() == 0:
        assert facts["uid"] == 65534  # root's sandboxes run as nobody


# A program that starts n children, each running `body` and then sleeping, and says when all have started.
CHILDREN = """
import os, time
ready = []
for _ in range({n}):
    r, w = os.pipe()
    if os.fork() == 0:
        if True:
            {body}
        os.write(w, b"k")
        time.sleep(60)
        os._exit(0)
    ready.append(r)
for r in ready:
    os.read(r, 1)
print("all started", flush=True)
time.sleep(60)
"""


UNWAITED = """
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for _ in range(6):
    if os.fork() == 0:
        start = time.process_time()
        while time.process_time() - start < 0.5:
            pass
        os._exit(0)
    try:
        os.wait()  # with SIGCHLD ignored: returns (ECHILD) once the child has ended, its time dropped
    except ChildProcessError:
        pass
print("all started", flush=True)
"""


def test_limits_end_hostile_programs_in_bounded_time():
    programs = {
        "sleeper": ("import time\nwhile True:\n    time.sleep(1)", Limits(wall_seconds=1.5)),
        "busy": ("while True:\n    pass", Limits(wall_seconds=20, cpu_seconds=1)),
        "memory": ("x = bytearray(2 * 1024**3)\nprint('allocated')", FAST),
        "flood": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", Limits(wall_seconds=1.5)),
        "forks": ("import os\nn = 0\nfor _ in range(100):\n    try:\n        if os.fork() == 0:\n"
                  "            import time; time.sleep(30)\n        n += 1\n    except OSError:\n        break\n"
                  "print(n)",
                  FAST),
        "disk": ("n = 0\ntry:\n    while True:\n        open('/sandbox/f%d' % n, 'wb').write(b'x' * 2**20)\n"
                 "        n += 1\nexcept OSError as e:\n    print(n, e.errno)", FAST),
        # finding 19: empty files cost no bytes but an inode each (~1 KiB of kernel memory)
        "files": ("n = 0\ntry:\n    while n < 100000:\n        open('/sandbox/e%d' % n, 'w').close()\n        n += 1\n"
                  "except OSError as e:\n    print(n, e.errno)", FAST),
        # finding 18: RLIMIT_AS is per process; four children of 100 MiB each hold 400 MiB in one sandbox
        "memory_in_children": (CHILDREN.format(n=4, body="b = bytearray(100 * 2**20)\n"
                                                         "            for j in range(0, len(b), 4096): b[j] = 1"),
                               dataclasses.replace(FAST, wall_seconds=20.0)),
        # RLIMIT_CPU is per process; four spinning children share one CPU limit per sandbox
        "cpu_in_children": (CHILDREN.format(n=4, body="while True: pass"), Limits(wall_seconds=20, cpu_seconds=1)),
        # one child at a time, each reaped by the kernel unseen (SIGCHLD ignored): their time reaches no parent
        "cpu_in_unwaited_children": (UNWAITED, Limits(wall_seconds=20, cpu_seconds=1))}
    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(programs)) as pool:
        r = dict(zip(programs, pool.map(lambda p: run_python(p[0], limits=p[1]), programs.values())))
    assert time.monotonic() - t < 30
    assert r["sleeper"].timed_out and r["sleeper"].returncode is None
    # the kernel's RLIMIT_CPU (SIGKILL / SIGXCPU) or the trainer's CPU limit per sandbox, whichever sees it first
    assert not r["busy"].timed_out and (r["busy"].returncode in (128 + 9, 128 + 24) or
                                        r["busy"].stopped.startswith("over the CPU limit")), r["busy"]
    assert r["memory"].returncode == 1 and "MemoryError" in r["memory"].stderr and "allocated" not in r["memory"].stdout
    assert r["flood"].timed_out and len(r["flood"].stdout) == Limits().output_bytes
    # the limit counts processes in the sandbox's own user namespace: bwrap's init, python, and the children
    assert r["forks"].returncode == 0 and 0 < int(r["forks"].stdout) <= FAST.processes - 2
    files, errno = map(int, r["disk"].stdout.split())
    assert errno == 28 and files <= FAST.disk_bytes // 2**20  # ENOSPC: the private tmpfs is full
    files, errno = map(int, r["files"].stdout.split())
    assert errno == 28 and files == FAST.disk_files - 1  # its nr_inodes, less the folder itself
    held = r["memory_in_children"]
    # (stopped by the per-sandbox sum, not let run to its 60 s sleep; on a loaded machine the watcher's
    # 0.1 s poll can come after all four children have allocated, so "all started" may be printed first)
    assert held.returncode is None and not held.timed_out
    assert re.match(r"over the memory limit: .* held ([\d.]+) MiB", held.stopped), held
    assert float(re.match(r".* held ([\d.]+) MiB", held.stopped).group(1)) > FAST.memory_bytes / 2**20
    for name in ("cpu_in_children", "cpu_in_unwaited_children"):
        spun = r[name]
        assert spun.returncode is None and not spun.timed_out and spun.stopped.startswith("over the CPU limit"), spun
        assert "all started" not in spun.stdout


def test_where_no_mount_is_allowed_the_tmpfs_is_bounded_in_bytes_only_and_says_so(monkeypatch):
    """A kernel that refuses the sandbox's own tmpfs mount (an LSM rule on user namespaces) gets bwrap's
    tmpfs, with a warning naming the cause, instead of no code reward at all."""
    real_probe = isolation._probe
    refused = "OSError: [Errno 1] cannot mount the sandbox tmpfs"
    monkeypatch.setattr(isolation, "_probe", lambda c, limits: refused if c.files_bounded else real_probe(c, limits))
    isolation.setup.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=r"cannot mount its own tmpfs here .*Errno 1.*bounded in bytes only"):
            found = isolation.setup("namespaces", int(FAST.disk_bytes))
        assert not found.files_bounded and "CAP_SYS_ADMIN" not in found.command_prefix
        r = run_python("n = 0\nwhile n < 5000:\n    open('/sandbox/e%d' % n, 'w').close()\n    n += 1\n"
                       "import os\nprint(n, [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')])",
                       limits=FAST)
        assert r.stdout.split() == ["5000", "['0000000000000000']"], r
    finally:
        isolation.setup.cache_clear()


def test_rlimits_mode_still_gives_verdicts_the_code_cannot_forge():
    forged = "class A:\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return A()\n"
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]
    assert run_tests_many([("def add(a, b):\n    return a + b\n", tests), (forged, tests)], FAST, mode="rlimits") == \
        [[True, True], [False, False]]


def test_missing_or_broken_bubblewrap_refuses_with_one_line(monkeypatch):
    isolation.setup.cache_clear()
    try:
        monkeypatch.setattr(isolation, "_bwrap_path", lambda: None)
        with pytest.raises(SandboxUnavailable, match=r"needs bubblewrap.*apt-get install bubblewrap.*"
                                                     r"task\.code_sandbox: rlimits") as missing:
            run_tests("def f(): pass", ["assert f() is None"])
        assert "\n" not in str(missing.value)
        monkeypatch.setattr(isolation, "_bwrap_path", lambda: "/bin/false")
        isolation.setup.cache_clear()
        with pytest.raises(SandboxUnavailable, match=r"could not start under bubblewrap \(/bin/false\).*rlimits"):
            check_available("namespaces")
        unknown = r"'jail' is unknown; use one of namespaces, rlimits \(task.code_sandbox\)"
        with pytest.raises(ValueError, match=unknown):
            tasks.score("code", ["```python\nx = 1\n```"], [{"tests": ["assert x == 1"]}], sandbox="jail")
    finally:
        isolation.setup.cache_clear()


def test_task_code_sandbox_reaches_the_code_reward(monkeypatch):
    from dlrl_jax import config
    from dlrl_jax.tasks import build_task
    mbpp = readers.packaged_file("mbpp_mini.jsonl")
    default = build_task(config.from_dict({"task": {"name": "code", "prompt_style": "chat", "train_file": mbpp,
                                                    "eval_size": 2}}).task, seed=0)
    weak = build_task(config.from_dict({"task": {"name": "code", "prompt_style": "chat", "train_file": mbpp,
                                                 "eval_size": 2, "code_sandbox": "rlimits"}}).task, seed=0)
    assert (default.code_sandbox, weak.code_sandbox) == ("namespaces", "rlimits")
    modes = []
    real = rewards.code.run_tests_many
    monkeypatch.setattr(rewards.code, "run_tests_many", lambda jobs, limits, mode: modes.append(mode) or
                        real(jobs, limits, mode=mode))
    record = weak.train[0]
    completion = f"<answer>\n```python\n{record['solution']}\n```\n</answer>"
    assert weak.correct([completion], [record]).tolist() == [1.0]
    assert default.correct([completion], [record]).tolist() == [1.0]
    assert modes == ["rlimits", "namespaces"]


def test_documented_conservative_cases_fail_even_for_right_code():
    """What child_judge.py documents as conservative: plain Python passes these, the judge fails them."""
    code = ("def inc(xs):\n    xs.append(1)\ndef apply(f, x):\n    return f(x)\ndef max(xs):\n    return 0\n"
            "class Box:\n    def __init__(self, v):\n        self.v = v\n    def __eq__(self, other):\n"
            "        return self.v == other.v\ndef box(v):\n    return Box(v)\n")
    statements = ["xs = []\ninc(xs)\nassert xs == [1]", "assert apply(lambda v: v + 1, 1) == 2",
                  "assert max([3, 4]) == 0",
                  "assert box(1) == box(1)", "assert box(1).v == 1"]
    assert [_oracle(code, s) for s in statements] == [True] * 5
    assert run_tests(code, statements, FAST) == [False, False, False, False, True]


def test_process_limit_is_per_sandbox_not_per_user():
    """Processes of the sandbox's user outside it (squatters; other sandboxes) do not count against a
    sandbox's limit: the kernel counts RLIMIT_NPROC per user namespace. In the weaker rlimits mode they do."""
    import subprocess
    squatters = [subprocess.Popen(["sleep", "60"], **isolation._sandbox_user()) for _ in range(3 * FAST.processes)]
    try:
        code = ("import threading\ndef spawn(n):\n    threads = [threading.Thread(target=int) for _ in range(n)]\n"
                "    for t in threads:\n        t.start()\n    for t in threads:\n        t.join()\n    return n\n")
        assert run_tests(code, ["assert spawn(4) == 4"], FAST) == [True]
        assert run_tests(code, ["assert spawn(4) == 4"], FAST, mode="rlimits") == [False]
    finally:
        for proc in squatters:
            proc.kill()
            proc.wait()


def test_training_and_eval_refuse_at_start_up_in_one_line_without_the_sandbox(monkeypatch):
    """build_task (train) and make_task (eval) raise ConfigError, which the CLI prints as one line."""
    from dlrl_jax import config
    from dlrl_jax.config import ConfigError
    from dlrl_jax.tasks import build_task, make_task
    cfg = config.from_dict({"task": {"name": "code", "prompt_style": "chat", "eval_size": 2,
                                     "train_file": readers.packaged_file("mbpp_mini.jsonl")}})
    isolation.setup.cache_clear()
    monkeypatch.setattr(isolation, "_bwrap_path", lambda: None)
    try:
        for build in (lambda: build_task(cfg.task, cfg.seed), lambda: make_task("code", "chat", [], [])):
            refusal = "task.code_sandbox=namespaces: the code sandbox needs bubblewrap"
            with pytest.raises(ConfigError, match=refusal) as e:
                build()
            assert "\n" not in str(e.value)
        assert make_task("code", "chat", [], [], code_sandbox="rlimits").code_sandbox == "rlimits"
    finally:
        isolation.setup.cache_clear()
