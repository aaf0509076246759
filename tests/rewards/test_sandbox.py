"""Hostile programs end within their limits, leave the test process and its files intact, and run in
parallel."""

import os
import time

from dlrl_jax.rewards.sandbox import Limits, run_many, run_python

FAST = Limits(wall_seconds=2.0, cpu_seconds=2, memory_bytes=256 * 2**20, processes=16)


def test_ordinary_program_and_stdin():
    r = run_python("import sys\nprint(int(sys.stdin.read()) * 2)", stdin="21", limits=FAST)
    assert (r.returncode, r.stdout.strip(), r.timed_out) == (0, "42", False)


def test_sleeping_program_is_killed_at_the_wall_clock_limit():
    # sleeping uses no CPU time, so only the wall clock can end it
    t = time.time()
    r = run_python("import time\nwhile True:\n    time.sleep(1)", limits=FAST)
    assert r.timed_out and r.returncode is None and time.time() - t < 4


def test_busy_loop_is_killed_at_the_cpu_limit():
    # a CPU limit below the wall clock: the kernel ends it (SIGXCPU, or SIGKILL at the hard limit)
    t = time.time()
    r = run_python("while True:\n    pass", limits=Limits(wall_seconds=10.0, cpu_seconds=1))
    assert not r.timed_out and r.returncode in (-9, -24) and time.time() - t < 6


def test_fork_bomb_ends_and_leaves_no_process_behind():
    t = time.time()
    r = run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", limits=FAST)
    assert time.time() - t < 5 and (r.timed_out or r.returncode != 0)
    time.sleep(0.2)
    survivors = os.popen("ps -eo user,args | grep 'main.py' | grep -v grep | wc -l").read().strip()
    assert survivors == "0"


def test_memory_bomb_fails_without_touching_the_trainer():
    r = run_python("x = bytearray(2 * 1024**3)\nprint('allocated')", limits=FAST)
    assert r.returncode != 0 and "allocated" not in r.stdout and "MemoryError" in r.stderr


def test_output_flood_is_bounded():
    r = run_python("while True:\n    print('x' * 10000)", limits=FAST)
    assert r.returncode != 0 or r.timed_out
    assert len(r.stdout) <= FAST.output_bytes


def test_writing_outside_its_directory_changes_nothing(tmp_path):
    victim = tmp_path / "trainer_state.txt"
    victim.write_text("precious")
    program = (f"try:\n    open({str(victim)!r}, 'w').write('gone')\nexcept OSError as e:\n    print('denied', e)\n"
               "open('inside.txt', 'w').write('ok')\nprint(open('inside.txt').read())")
    r = run_python(program, limits=FAST)
    assert victim.read_text() == "precious"
    if os.geteuid() == 0:  # dropped to nobody: the write is refused, writing in its own directory works
        assert "denied" in r.stdout and "ok" in r.stdout


def test_signalling_the_parent_does_not_kill_the_trainer():
    r = run_python("import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError as e:\n"
                   "    print('refused', e.errno)", limits=FAST)
    assert os.getpid() > 0  # still here
    if os.geteuid() == 0:
        assert "refused" in r.stdout


def test_many_programs_in_parallel():
    t = time.time()
    results = run_many([{"source": f"print({i} * {i})", "limits": FAST} for i in range(16)] +
                       [{"source": "while True: pass", "limits": Limits(wall_seconds=1.0)}])
    assert [r.stdout.strip() for r in results[:16]] == [str(i * i) for i in range(16)]
    assert results[16].timed_out and time.time() - t < 15
