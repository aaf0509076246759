"""Hostile completions against the code sandbox, run as one concurrent batch with honest ones mixed in.

Each hostile solution must pass no test (a plainly wrong `a - b` passes none of these either), every
honest copy in the same batch must pass all of its tests, the batch must end within a time bound, and
afterwards the trainer and a process of the trainer's user must be alive, no process a hostile one
started may remain, no file may have appeared or changed outside the sandbox (host /tmp, /dev/shm,
/var/tmp and a world-writable folder of the test), and a host TCP port and an abstract unix socket must
have had no connection. The batch runs as the user running pytest (root in CI: the sandboxes run as
nobody) and, when that is root, once more as an ordinary user (an unnamed uid, through setpriv).
The fairness cases at the end run CPU burners beside honest completions, 8 tests at once, and compare
every honest reward with its hand-worked value, batch after batch, as either user.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

import dlrl_jax.rewards.sandbox as sandbox_package
from dlrl_jax.rewards.sandbox import Limits, judge_tests_many

MARK = "dlrlhostile" + uuid.uuid4().hex[:10]
HONEST = "import math\ndef add(a, b):\n    return a + b\n"
WRONG = "import math\ndef add(a, b):\n    return a - b\n"
# The statement forms of MBPP and HumanEval; `a - b` passes none, `a + b` all.
ALL_FORMS = ["assert add(1, 2) == 3", "assert abs(add(0.5, 0.25) - 0.75) < 1e-9",
             "import math\nassert math.isclose(add(2.0, 2.0), 4.0)", "assert set(add([1], [2])) == {1, 2}",
             "def check(candidate):\n    assert candidate(3, 4) == 7\n"
             "    assert candidate('a', 'b') == 'ab'\ncheck(add)",
             "assert not add(2, -2)", "assert math.isclose(add(1.5, 1.5), 3.0)"]  # relies on the solution's import
TWO_FORMS = [ALL_FORMS[0], ALL_FORMS[5]]
# wall limit well above the 2 CPU-seconds a hostile process may burn: CPU-hungry neighbours must not decide
# an honest test on a 2-core machine
LIMITS = Limits(wall_seconds=8.0, cpu_seconds=2, memory_bytes=256 * 2**20)

# Tries to make a test pass without computing a + b.
FORGERS = {
    "prints_pass_tokens_and_exits_0": "print('passed OK True 1')\nimport sys\nsys.stdout.flush()\nsys.exit(0)\n",
    "os_exit_0_at_import": "import os\nos._exit(0)\n",
    "os_exit_0_inside_the_call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "system_exit_inside_the_call": "def add(a, b):\n    raise SystemExit(0)\n",
    "raises_assertion_or_stop": "def add(a, b):\n    raise StopIteration('passed')\n",
    "object_whose_eq_is_always_true": '''
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __bool__(self): return False
    def __hash__(self): return 0
    def __abs__(self): return 0
    def __sub__(self, other): return 0
    __rsub__ = __add__ = __radd__ = __sub__
    def __float__(self): return 4.0
    def __index__(self): return 3
def add(a, b):
    return Anything()
''',
    "rigged_subclasses_of_int_float_str_list": '''
class I(int):
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    __hash__ = int.__hash__
    def __sub__(self, o): return I(0)
    __rsub__ = __sub__
    def __abs__(self): return I(0)
    def __lt__(self, o): return True
    def __bool__(self): return False
class L(list):
    def __iter__(self): return iter([1, 2])
    def __eq__(self, o): return True
def add(a, b):
    return L([0]) if isinstance(a, list) else I(99)
''',
    "patches_builtins_and_math": '''
import builtins, math
builtins.abs = lambda x: 0
builtins.sorted = lambda x=(): [1, 2]
builtins.all = builtins.any = lambda *a: True
builtins.AssertionError = type('Never', (Exception,), {})
math.isclose = lambda *a, **k: True
def add(a, b):
    return a - b
''',
    "shadows_the_names_a_test_uses": '''
import types
def abs(x): return 0
def set(x): return {1, 2}
def isclose(*a, **k): return True
isclose.__module__ = 'math'
math = types.ModuleType('math')
math.isclose = lambda *a, **k: True
def check(candidate): return None
def add(a, b):
    return a - b
''',
    # finding 16: the judge once took a function by the label on it and followed attribute chains out of
    # its pure modules (fractions.operator.add, re.sys...)
    "labels_itself_a_pure_function": '''
def add(a, b):
    return a - b
add.__module__ = 'fractions'
add.__qualname__ = 'operator.add'
def check(candidate):
    return None
check.__module__ = 'math'
check.__qualname__ = 'sys.modules.clear'
''',
    "labels_itself_operator_add": '''
def add(a, b):
    return a - b
add.__module__ = 'operator'
add.__qualname__ = 'add'
''',
    "fake_math_object": '''
class FakeMath:
    def isclose(self, *a, **k): return True
    def __getattr__(self, name): return lambda *a, **k: True
math = FakeMath()
def add(a, b):
    return a - b
''',
    "walks_frames_gc_and_main_globals": '''
import gc, sys
seen = []
f = sys._getframe()
while f is not None:
    seen.append(sorted(f.f_globals)); f = f.f_back
seen.append(dir(sys.modules.get('__main__')))
for obj in gc.get_objects():
    if isinstance(obj, dict) and ('verdict' in obj or 'replies' in obj):
        obj['verdict'] = obj.get('replies')
print(seen)
def add(a, b):
    return a - b
''',
    "forges_messages_on_every_descriptor": '''
import json, os, struct
def frame(m):
    d = json.dumps(m).encode()
    return struct.pack('>I', len(d)) + d
hello = frame({'modules': ['math'], 'values': {'add': ['H', 0], 'check': ['H', 0]},
               'origins': {'add': ['builtins', 'eval']}})
for fd in range(3, 256):  # a well-framed greeting and forty replies `True` on whichever fd is the channel
    try:
        os.write(fd, hello + frame({'value': True}) * 40)
    except OSError:
        pass
verdict = json.dumps({'passed': True, 'reason': 'passed'}).encode()
for fd in range(3, 256):
    try:
        os.write(fd, verdict)
    except OSError:
        pass
time.sleep(600)  # keeps the channel open, so the judge reads the forged replies
''',
    "huge_and_deep_return_values": '''
def add(a, b):
    if isinstance(a, list):
        x = []
        for _ in range(10000):
            x = [x]
        return x
    return 'x' * (64 * 2**20)
''',
}

# Tries to reach outside its sandbox (each is also wrong, so it may pass nothing).
ESCAPERS = {
    "setsid_child_survives": '''
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/usr/bin/python3', ['python3', '-c', 'import time\\ntime.sleep(600)', 'MARK-setsid'])
    os._exit(0)
def add(a, b):
    return a - b
''',
    "process_squatting": '''
import os
for _ in range(1000):
    try:
        if os.fork() == 0:
            os.execv('/usr/bin/python3', ['python3', '-c', 'import time\\ntime.sleep(600)', 'MARK-squat'])
    except OSError:
        break
def add(a, b):
    return a - b
''',
    "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "thread_bomb": '''
import threading, time
for _ in range(10000):
    try:
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    except RuntimeError:
        break
def add(a, b):
    return a - b
''',
    "kills_every_process_it_can": '''
import os, signal
for sig in (signal.SIGSTOP, signal.SIGKILL):
    try:
        os.kill(-1, sig)
    except OSError:
        pass
for pid in list(range(1, 4096)) + [TRAINER_PID, SENTINEL_PID]:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
def add(a, b):
    return a - b
''',
    "signals_the_trainer": '''
import os, signal
for pid in (TRAINER_PID, SENTINEL_PID, os.getppid()):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
def add(a, b):
    return a - b
''',
    "reads_the_trainers_proc_and_files": '''
import os
leaked = []
for pid in os.listdir('/proc'):
    for name in ('environ', 'cmdline', 'maps'):
        try:
            data = open('/proc/%s/%s' % (pid, name), 'rb').read()
        except OSError:
            continue
        if b'CANARY' in data:
            leaked.append(data)
for path in ('/proc/TRAINER_PID/environ', 'VICTIM', '/etc/shadow'):
    try:
        leaked.append(open(path, 'rb').read())
    except OSError:
        pass
def add(a, b):
    return a + b if leaked else a - b  # anything read passes the test, which the check forbids
''',
    "connects_to_the_host": '''
reached = []
for family, address in ((socket.AF_INET, ('127.0.0.1', PORT)), (socket.AF_UNIX, '\\0ABSTRACT')):
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(address)
        s.sendall(b'MARK')
        reached.append(address)
    except OSError:
        pass
def add(a, b):
    return a + b if reached else a - b
''',
    "writes_host_tmp_shm_and_other_files": '''
written = []
for path in ('/dev/shm/MARK-shm', '/var/tmp/MARK-vartmp', 'VICTIM_DIR/MARK-dir', '/MARK-root', '/usr/MARK-usr',
             'VICTIM'):
    try:
        open(path, 'a').write('overwritten')
        written.append(path)
    except OSError:
        pass
open('/tmp/MARK-tmp', 'w').write('x')  # its /tmp is its own tmpfs: allowed, and gone with it
def add(a, b):
    return a + b if written else a - b
''',
    "rewrites_other_sandboxes_files": '''
import glob, os
evil = 'def add(a, b):\\n    return a - b\\n'
paths = glob.glob('/tmp/**/*.py', recursive=True) + glob.glob('/sandbox/**', recursive=True)
paths += glob.glob('/proc/*/cwd/*') + glob.glob('/proc/*/root/sandbox/*') + glob.glob('/proc/*/fd/*')
for path in paths:
    try:
        open(path, 'w').write(evil)
    except OSError:
        pass
def add(a, b):
    return a - b
''',
    "replaces_outputs_with_fifos": '''
import glob, os
paths = ['/sandbox/.stdout', '/sandbox/.stderr', '/tmp/out', 'VICTIM_DIR/fifo'] + glob.glob('/tmp/dlrl_sandbox_*/.std*')
for path in paths:
    try:
        os.remove(path)
    except OSError:
        pass
    try:
        os.mkfifo(path)
    except OSError:
        pass
os.mkfifo('/sandbox/block')
open('/sandbox/block', 'w')
''',
    "huge_output": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n    sys.stderr.write('y' * 65536)\n",
    "infinite_loop_at_import": "while True:\n    pass\n",
    "infinite_loop_in_the_call": "def add(a, b):\n    while True:\n        pass\n",
    "sleeps_in_the_call": "import time\ndef add(a, b):\n    time.sleep(600)\n",
    "memory_bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))\n",
    "fills_its_disk": '''
i = 0
while True:
    try:
        open('/sandbox/f%d' % i, 'wb').write(b'x' * 2**20)
    except OSError:
        break
    i += 1
def add(a, b):
    return a - b
''',
}


def batch() -> list[tuple[str, str, list[str]]]:
    """(name, code, tests): each hostile one next to an honest copy, plus a plain right and wrong one."""
    jobs = [("honest", HONEST, ALL_FORMS), ("wrong", WRONG, ALL_FORMS)]
    jobs += [(name, code, ALL_FORMS) for name, code in FORGERS.items()]
    for i, (name, code) in enumerate(ESCAPERS.items()):
        jobs.append((name, code, TWO_FORMS[:1]))
        if i % 3 == 0:  # honest neighbours throughout the batch, which runs all at once
            jobs.append(("honest", HONEST, TWO_FORMS))
    return jobs


def fill(code: str, values: dict) -> str:
    for key, value in values.items():
        code = code.replace(key, str(value))
    return code


# The same run, as a script any user's python3 can run (only the sandbox package, copied, is needed).
DRIVER = r'''
import glob, json, os, socket, subprocess, sys, time
spec = json.load(sys.stdin)
sys.path.insert(0, spec["root"])
from dlrl_jax.rewards.sandbox import Limits, judge_tests_many

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(16)
server.setblocking(False)
abstract = socket.socket(socket.AF_UNIX)
abstract.bind("\0" + spec["mark"] + "-abstract")
abstract.listen(16)
abstract.setblocking(False)
sentinel = subprocess.Popen(["sleep", "300"])
values = {"TRAINER_PID": os.getpid(), "SENTINEL_PID": sentinel.pid, "PORT": server.getsockname()[1],
          "ABSTRACT": spec["mark"] + "-abstract", "VICTIM_DIR": spec["victim_dir"], "VICTIM": spec["victim"],
          "MARK": spec["mark"], "CANARY": spec["canary"]}
jobs = []
for name, code, tests in spec["jobs"]:
    for key, value in values.items():
        code = code.replace(key, str(value))
    jobs.append((code, tests))
start = time.monotonic()
verdicts = judge_tests_many(jobs, Limits(**spec["limits"]))
elapsed = time.monotonic() - start
connections = 0
for s in (server, abstract):
    try:
        s.accept()
        connections += 1
    except BlockingIOError:
        pass
survivors = []
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        if spec["mark"].encode() in open(path, "rb").read():
            survivors.append(path)
    except OSError:
        pass
sentinel_alive = sentinel.poll() is None
sentinel.kill()
print(json.dumps({"verdicts": [[[v.passed, v.reason] for v in vs] for vs in verdicts], "elapsed": elapsed,
                  "connections": connections, "survivors": survivors, "sentinel_alive": sentinel_alive,
                  "uid": os.getuid()}))
'''


def _host_marks() -> list[str]:
    found = []
    for pattern in ("/tmp/*MARK*", "/tmp/*/*MARK*", "/dev/shm/*MARK*", "/var/tmp/*MARK*", "/*MARK*"):
        found += glob.glob(pattern.replace("MARK", MARK))
    return found


def _run_batch(python: str, root: str, env: dict, victim_dir: str, user: list[str]) -> dict:
    victim = os.path.join(victim_dir, "victim.py")
    with open(victim, "w") as f:
        f.write(HONEST)
    os.chmod(victim_dir, 0o777)
    os.chmod(victim, 0o666)
    spec = {"root": root, "mark": MARK, "canary": env["DLRL_HOSTILE_CANARY"], "victim_dir": victim_dir,
            "victim": victim, "jobs": batch(), "limits": {"wall_seconds": LIMITS.wall_seconds,
                                                          "cpu_seconds": LIMITS.cpu_seconds,
                                                          "memory_bytes": LIMITS.memory_bytes}}
    before = _host_marks()
    proc = subprocess.run(user + [python, "-I", "-c", DRIVER], input=json.dumps(spec), capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["new_host_files"] = sorted(set(_host_marks()) - set(before))
    out["victim_dir"] = sorted(os.listdir(victim_dir))
    with open(victim) as f:
        out["victim"] = f.read()
    return out


def _check(out: dict) -> None:
    jobs = batch()
    verdicts = out["verdicts"]
    assert len(verdicts) == len(jobs)
    for (name, _, tests), got in zip(jobs, verdicts):
        passed = [p for p, _ in got]
        if name == "honest":
            assert all(passed), got  # a hostile neighbour cannot change an honest completion's reward
        else:
            assert not any(passed), (name, got)  # no more than the plainly wrong `a - b` (which passes none)
    assert out["elapsed"] < 120, out["elapsed"]  # no hang: about len(tests) / workers x wall clock
    assert out["sentinel_alive"] and out["connections"] == 0 and out["survivors"] == []
    assert out["new_host_files"] == [] and out["victim_dir"] == ["victim.py"] and out["victim"] == HONEST


def _package_copy(into: str) -> str:
    """The sandbox package alone (stdlib only) under `into`, readable by any user."""
    target = os.path.join(into, "dlrl_jax", "rewards", "sandbox")
    os.makedirs(target)
    for parent in (os.path.join(into, "dlrl_jax"), os.path.join(into, "dlrl_jax", "rewards")):
        open(os.path.join(parent, "__init__.py"), "w").close()
    source = os.path.dirname(sandbox_package.__file__)
    for name in os.listdir(source):
        if name.endswith(".py"):
            shutil.copy(os.path.join(source, name), target)
    for dirpath, dirnames, filenames in os.walk(into):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return into


def _env(canary: str) -> dict:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "DLRL_HOSTILE_CANARY": canary, "HOME": "/"}


def test_hostile_batch_as_the_current_user(tmp_path):
    root = _package_copy(str(tmp_path / "pkg"))
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    out = _run_batch(sys.executable, root, dict(os.environ, **_env(uuid.uuid4().hex)), str(victim_dir), [])
    _check(out)
    assert out["uid"] == os.getuid()


def test_hostile_batch_as_an_ordinary_user():
    if os.geteuid() != 0:
        pytest.skip("pytest runs as an ordinary user already: test_hostile_batch_as_the_current_user is that run")
    python, setpriv = shutil.which("python3", path="/usr/bin:/bin"), shutil.which("setpriv")
    if python is None or setpriv is None:
        pytest.skip("needs /usr/bin/python3 and setpriv (util-linux) to run the batch as another user")
    uid = 54321  # an unnamed, unprivileged uid: it owns nothing on the machine
    with tempfile.TemporaryDirectory(prefix="dlrl_sandbox_user_") as folder:
        os.chmod(folder, 0o755)
        root = _package_copy(os.path.join(folder, "pkg"))
        victim_dir = os.path.join(folder, "victim")
        os.makedirs(victim_dir)
        user = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        out = _run_batch(python, root, _env(uuid.uuid4().hex), victim_dir, user)
    _check(out)
    assert out["uid"] == uid


def test_plainly_wrong_and_honest_reference_points():
    # honest and plainly wrong code only: a roomy wall limit, so a loaded machine's start-up never decides
    verdicts = judge_tests_many([(HONEST, ALL_FORMS), (WRONG, ALL_FORMS)], dataclasses.replace(LIMITS, wall_seconds=20.0))
    assert [[v.passed for v in vs] for vs in verdicts] == [[True] * 7, [False] * 7]


# slow (24 s): the hostile batches as either user stay in the suite
@pytest.mark.slow
def test_code_reward_of_honest_completions_is_unchanged_by_hostile_neighbours():
    """Through the code reward itself: honest completions keep 1.0 + 0.5 format, hostile ones get the
    format score only."""
    from dlrl_jax import tasks

    def answer(code):
        return f"<answer>\n```python\n{code}```\n</answer>"

    hostile = [ESCAPERS[n] for n in ("fork_bomb", "kills_every_process_it_can", "replaces_outputs_with_fifos",
                                     "process_squatting")] + [FORGERS["object_whose_eq_is_always_true"]]
    hostile = [fill(code, {"TRAINER_PID": os.getpid(), "SENTINEL_PID": os.getpid(), "VICTIM_DIR": "/nonexistent",
                           "MARK": MARK}) for code in hostile]
    completions = [answer(c) for pair in zip(hostile, [HONEST] * len(hostile)) for c in pair]
    example = {"tests": TWO_FORMS}
    # The wall limit must exceed what the CPU-hungry neighbours may burn (processes x cpu_seconds on the
    # machine's cores), or their CPU alone can push an honest test past it on a small machine.
    roomy = dataclasses.replace(LIMITS, wall_seconds=20.0)
    scores = tasks.score("code", completions, [example] * len(completions), reward_set="dlrl", limits=roomy)
    assert scores.tolist() == [0.5, 1.5] * len(hostile)


# Fairness (finding 17): CPU burners beside honest completions on a machine with fewer cores than tests. An
# honest completion needs FAIR_WORK CPU-seconds; alone it passes well within FAIR_LIMITS. The burners spin
# until the sandbox's CPU limit ends them, one in a single process, one in six (itself and five children).
FAIR_WORK = 0.3
FAIR_HONEST = ("import time\ndef work(n):\n    start = time.process_time()\n"
               f"    while time.process_time() - start < {FAIR_WORK}:\n        pass\n    return 2 * n\n")
FAIR_BURNERS = ["def work(n):\n    while True:\n        pass\n",
                "import os\nfor _ in range(5):\n    try:\n        if os.fork() == 0:\n            while True:\n"
                "                pass\n    except OSError:\n        break\n"
                "def work(n):\n    while True:\n        pass\n"]
FAIR_TESTS = ["assert work(21) == 42"]
# own time 2 s for 0.3 s of CPU; the eight tests of a batch run at once (8 workers on 2 cores: 4 per core)
FAIR_LIMITS = Limits(wall_seconds=2.0, cpu_seconds=1, memory_bytes=256 * 2**20)
FAIR_BATCH = [FAIR_HONEST, FAIR_BURNERS[0], FAIR_HONEST, FAIR_HONEST, FAIR_BURNERS[1], FAIR_HONEST, FAIR_HONEST,
              FAIR_HONEST]

FAIR_DRIVER = r'''
import json, sys
spec = json.load(sys.stdin)
sys.path.insert(0, spec["root"])
from dlrl_jax.rewards.sandbox import Limits, judge_tests_many
batches = []
for _ in range(spec["batches"]):
    verdicts = judge_tests_many([(code, spec["tests"]) for code in spec["codes"]], Limits(**spec["limits"]))
    batches.append([[[v.passed, v.reason] for v in vs] for vs in verdicts])
print(json.dumps(batches))
'''


def _fair_rewards_as_the_current_user(batches: int) -> list[list[float]]:
    """The code reward itself (dlrl: 0.5 x format + fraction of tests passed), batch after batch."""
    from dlrl_jax.rewards.code import code_rewards
    completions = [f"<answer>\n```python\n{code}```\n</answer>" for code in FAIR_BATCH]
    return [code_rewards(completions, [{"tests": FAIR_TESTS}] * len(FAIR_BATCH), limits=FAIR_LIMITS)
            for _ in range(batches)]


def _fair_rewards_as_an_ordinary_user(batches: int) -> list[list[float]]:
    """The same batches under an unnamed uid (setpriv), through the copied sandbox package; the reward is
    0.5 x format (1.0 here) + the fraction of tests passed, as code_rewards computes it."""
    python, setpriv = shutil.which("python3", path="/usr/bin:/bin"), shutil.which("setpriv")
    if python is None or setpriv is None:
        pytest.skip("needs /usr/bin/python3 and setpriv (util-linux) to run the batch as another user")
    with tempfile.TemporaryDirectory(prefix="dlrl_sandbox_fair_") as folder:
        os.chmod(folder, 0o755)
        root = _package_copy(os.path.join(folder, "pkg"))
        spec = {"root": root, "codes": FAIR_BATCH, "tests": FAIR_TESTS, "batches": batches,
                "limits": {"wall_seconds": FAIR_LIMITS.wall_seconds, "cpu_seconds": FAIR_LIMITS.cpu_seconds,
                           "memory_bytes": FAIR_LIMITS.memory_bytes}}
        proc = subprocess.run([setpriv, "--reuid=54321", "--regid=54321", "--clear-groups", "--", python, "-I", "-c",
                               FAIR_DRIVER], input=json.dumps(spec), capture_output=True, text=True,
                              env=_env(uuid.uuid4().hex), timeout=60 + 30 * batches)
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdicts = json.loads(proc.stdout.strip().splitlines()[-1])
    return [[0.5 + sum(p for p, _ in vs) / len(vs) for vs in batch] for batch in verdicts]


def _check_fair(rewards: list[list[float]]) -> None:
    # hand-worked: an honest completion passes its one test (0.5 + 1.0); a burner passes none (0.5)
    expected = [1.5 if code == FAIR_HONEST else 0.5 for code in FAIR_BATCH]
    for i, batch in enumerate(rewards):
        assert batch == expected, (i, batch)


@pytest.mark.parametrize("user", ["current", "ordinary"])
def test_cpu_burners_leave_honest_rewards_unchanged(user):
    """Finding 17: 8 tests at once on 2 cores, two of them burning CPU (one in 6 processes), 2 batches."""
    if user == "ordinary" and os.geteuid() != 0:
        pytest.skip("pytest runs as an ordinary user already: the `current` case is that run")
    run = _fair_rewards_as_the_current_user if user == "current" else _fair_rewards_as_an_ordinary_user
    _check_fair(run(2))


# slow (~2 min): the 2-batch version above stays in the suite
@pytest.mark.slow
@pytest.mark.parametrize("user", ["current", "ordinary"])
def test_cpu_burners_leave_honest_rewards_unchanged_over_20_batches(user):
    if user == "ordinary" and os.geteuid() != 0:
        pytest.skip("pytest runs as an ordinary user already: the `current` case is that run")
    run = _fair_rewards_as_the_current_user if user == "current" else _fair_rewards_as_an_ordinary_user
    _check_fair(run(20))


# slow (~40 s on a loaded 2-core machine): finding 17 as reported, with the code reward's own limits
@pytest.mark.slow
def test_finding_17_as_reported_a_solution_needing_1_5_cpu_seconds_passes_among_copies_and_burners():
    from dlrl_jax.rewards.code import LIMITS as CODE_LIMITS
    needs_1_5 = FAIR_HONEST.replace(str(FAIR_WORK), "1.5")
    copies = judge_tests_many([(needs_1_5, FAIR_TESTS)] * 8, CODE_LIMITS)
    assert [[v.passed for v in vs] for vs in copies] == [[True]] * 8, copies
    beside = judge_tests_many([(needs_1_5, FAIR_TESTS)] * 3 + [(FAIR_BURNERS[0], FAIR_TESTS)] * 7, CODE_LIMITS)
    assert [vs[0].passed for vs in beside] == [True] * 3 + [False] * 7, beside
