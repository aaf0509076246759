"""Bad input of every kind (issue 18) ends in one line naming the file, row or field and the fix, with a
non-zero exit status and no traceback, and loses nothing: non-UTF-8 data, a .json syntax error, a
10 MB CSV field, a 10 MB prompt (refused by row, never allocated), a truncated safetensors file,
out-of-range seeds, an output path that is a file, a full disk (a real one: a 1 MiB tmpfs in a private
mount namespace), and exports that replace the previous folder whole or not at all."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from dlrl_jax import checkpoints, cli, models, tasks
from dlrl_jax.data import readers
from dlrl_jax.folders.atomic import replace_folder
from tests.one_line_errors import fails_in_one_line, quiet_transformers  # noqa: F401  (an autouse fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE = 10_000_000  # characters: a 10 MB field / prompt


_fails_in_one_line = fails_in_one_line


def test_non_utf8_data_names_the_file_and_line(tmp_path, model_dir, capsys):
    path = tmp_path / "data.jsonl"
    data = b'{"question": "one", "answer": "1"}\n{"question": "caf\xe9", "answer": "2"}\n'
    path.write_bytes(data)
    byte = data.index(b"\xe9")  # a Latin-1 e-acute, counted by hand: 36 bytes of line 1, then 16
    assert byte == 52
    with pytest.raises(readers.DataError, match=r"data.jsonl line 2 \(byte 52\): not UTF-8 text .*re-save"):
        tasks.read_records(str(path), "gsm8k")
    err = _fails_in_one_line(capsys, ["eval", "--model", model_dir, "--task", "gsm8k", "--data", str(path),
                                      "--gen-lengths", "16", "--no-progress"])
    assert "data.jsonl line 2" in err


def test_json_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"question": "a", "answer": "1"},\n  {"question": "b" "answer": "2"}\n]\n')
    with pytest.raises(readers.DataError, match=r"data.json line 3 column 20: not valid JSON \(Expecting ','"):
        tasks.read_records(str(path), "gsm8k")


def test_a_10mb_csv_field_is_read_and_the_10mb_prompt_refused_by_row(tmp_path, model_dir, capsys):
    path = tmp_path / "data.csv"
    with open(path, "w") as f:  # row 2 holds a 10 MB question
        f.write("question,answer\nshort one,1\n" + "x" * HUGE + ",2\nanother,3\n")
    records = tasks.read_records(str(path), "gsm8k")
    assert [len(r["question"]) for r in records] == [9, HUGE, 7]
    start = time.time()
    err = _fails_in_one_line(capsys, ["eval", "--model", model_dir, "--task", "gsm8k", "--data", str(path),
                                      "--gen-lengths", "16", "--no-progress", "--out", str(tmp_path / "ev")])
    # the tiny model's config.json states no position limit: 32768, less the 16 generated tokens
    assert re.search(rf"{path} row 2: the prompt \(100001\d\d characters\) has more than the 32752 tokens", err), err
    # the training path names the config field, the file and the row
    err = _fails_in_one_line(capsys, ["train", "--set", "task.name=gsm8k", "--set", "task.prompt_style=chat",
                                      "--set", f"task.train_file={path}", "--set", f"task.eval_file={path}",
                                      "--set", "sft.steps=0", "--set", f"run.out_dir={tmp_path / 'run'}",
                                      "--set", "algorithm.prompts_per_batch=2", "--set", "algorithm.group_size=4"])
    assert f"task.train_file {path} row 2: the prompt" in err and "the model holds 32768 positions" in err
    assert time.time() - start < 60  # measured, not encoded into a 10M x 10M attention matrix


def test_a_10mb_sft_target_is_refused_by_row(tmp_path, capsys):
    path = tmp_path / "data.jsonl"
    rows = [{"question": "one", "answer": "1"}, {"question": "two", "answer": "y" * HUGE + " #### 2"},
            {"question": "three", "answer": "3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    err = _fails_in_one_line(capsys, ["train", "--set", "task.name=gsm8k", "--set", "task.prompt_style=chat",
                                      "--set", f"task.train_file={path}", "--set", f"task.eval_file={path}",
                                      "--set", "sft.steps=1", "--set", f"run.out_dir={tmp_path / 'run'}",
                                      "--set", "sampler.gen_length=64", "--set", "sampler.block_length=64"])
    assert f"task.train_file {path} row 2: its SFT target has over " in err and "more than sampler.gen_length 64" \
        in err, err


def test_a_truncated_safetensors_file_is_named(tmp_path, model_dir, capsys):
    broken = str(tmp_path / "broken")
    shutil.copytree(model_dir, broken)
    weights = os.path.join(broken, "model.safetensors")
    os.truncate(weights, os.path.getsize(weights) // 2)
    with pytest.raises(checkpoints.CheckpointError, match=r"model.safetensors is truncated or corrupt .*export it again"):
        checkpoints.from_pretrained(broken)
    err = _fails_in_one_line(capsys, ["sample", "--model", broken, "--prompt-ids", "1 2"])
    assert weights in err


@pytest.mark.parametrize("argv,message", [
    (["sample", "--prompt-ids", "1", "--seed", "-1"], "--seed must be in [0, 2147483646], got -1"),
    (["sample", "--prompt-ids", "1", "--seed", str(2**64)], "--seed must be in [0, 2147483646]"),
    (["eval", "--task", "sudoku", "--seed", str(2**40), "--gen-lengths", "16"], "--seed must be in [0, 2147483646]"),
    (["sample", "--prompt-ids", "1", "--temperature", "nan"], "--temperature must be a finite number >= 0, got nan"),
    (["eval", "--task", "sudoku", "--temperature", "nan", "--gen-lengths", "16"],
     "--temperature must be a finite number, got nan"),
    (["eval", "--task", "sudoku", "--steps-per-token", "inf", "--gen-lengths", "16"],
     "--steps-per-token must be a finite number, got inf"),
    (["sample", "--prompt-ids", "1", "--gen-length", "16", "--steps", "32"], "steps 32 exceeds gen_length 16"),
    (["eval", "--task", "sudoku", "--gen-lengths", "16,x"], "--gen-lengths must be integers separated by commas"),
    (["train", "--set", "seed=-5"], "'seed' must be in [0, 2147483646], got -5"),
    (["train", "--set", "optim.b1=[0.9"], "--set optim.b1: the value '[0.9' is not a YAML scalar"),
    (["train", "--set", "sampler.steps=64"], "sampler.steps 64 exceeds sampler.gen_length 16"),
])
def test_cli_argument_errors_are_one_line(model_dir, capsys, argv, message):
    argv = argv[:1] + ["--model", model_dir] + argv[1:] if argv[0] in ("sample", "eval") else argv
    assert message in _fails_in_one_line(capsys, argv)


def test_output_paths_that_are_files_are_named(tmp_path, model_dir, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    err = _fails_in_one_line(capsys, ["eval", "--model", model_dir, "--task", "sudoku", "--gen-lengths", "16",
                                      "--out", str(a_file), "--no-progress"])
    assert f"--out {a_file} is a file, not a folder" in err
    err = _fails_in_one_line(capsys, ["export", "--model", model_dir, "--out", str(a_file)], status=74)
    assert str(a_file) in err
    assert a_file.read_text() == "keep me"


def test_an_export_replaces_the_folder_whole_or_not_at_all(tmp_path, model_dir):
    target = str(tmp_path / "export")
    checkpoints.save_pretrained(models.init_model(models.preset("tiny"), seed=1), target)
    os.makedirs(os.path.join(target, "eval"))
    open(os.path.join(target, "eval", "results.jsonl"), "w").write("{}\n")
    open(os.path.join(target, "model-00001-of-00002.safetensors"), "w").write("stale shard")
    before = open(os.path.join(target, "model.safetensors"), "rb").read()
    with pytest.raises(RuntimeError, match="killed mid-export"):  # a failure half-way: the old folder stays
        with replace_folder(target) as tmp:
            open(os.path.join(tmp, "model.safetensors"), "w").write("half")
            raise RuntimeError("killed mid-export")
    assert open(os.path.join(target, "model.safetensors"), "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no temporary folder left
    new = models.init_model(models.preset("tiny"), seed=2)
    checkpoints.save_pretrained(new, target)
    # the new weights, the folder's other content kept, the old export's stale shard gone
    assert sorted(os.listdir(target)) == ["SHA256SUMS", "config.json", "eval", "model.safetensors"]
    np.testing.assert_array_equal(np.asarray(checkpoints.from_pretrained(target).embed[...]), np.asarray(new.embed[...]))
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_kill9_during_exports_leaves_a_loadable_folder(tmp_path, model_dir):
    """A process exports the same model again and again into one folder; SIGKILL at a random moment
    (most of its time is spent writing) leaves the folder whole: it loads, with the model's weights."""
    target = str(tmp_path / "export")
    code = ("import sys\nfrom dlrl_jax import checkpoints\nm = checkpoints.from_pretrained(sys.argv[1])\n"
            "while True:\n    checkpoints.save_pretrained(m, sys.argv[2])\n")
    proc = subprocess.Popen([sys.executable, "-c", code, model_dir, target], cwd=ROOT,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
    deadline = time.time() + 120
    while not os.path.isdir(target):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    time.sleep(np.random.default_rng().uniform(0.2, 0.6))
    proc.kill()
    proc.wait()
    expected = checkpoints.from_pretrained(model_dir)
    loaded = checkpoints.from_pretrained(target)
    np.testing.assert_array_equal(np.asarray(loaded.embed[...]), np.asarray(expected.embed[...]))
    checkpoints.save_pretrained(expected, target)  # the next export clears what the killed one left behind
    assert sorted(os.listdir(tmp_path)) == ["export"]


def _in_tiny_tmpfs(tmp_path, script):
    """Runs `script` (sh) with a 1 MiB tmpfs mounted on $FULL in a private mount namespace."""
    full = tmp_path / "full"
    full.mkdir()
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {full}"],
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"no private tmpfs here (unshare/mount: {probe.stderr.strip()})")
    env = dict(os.environ, FULL=str(full), JAX_PLATFORMS="cpu")
    return subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {full} && {script}"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_a_full_disk_during_export_is_one_line_and_keeps_the_previous_folder(tmp_path, model_dir):
    # a previous (small) folder sits on the full disk; the 3.5 MB model cannot fit beside it
    script = (f'mkdir -p "$FULL/out" && echo old > "$FULL/out/notes.txt" && '
              f'{sys.executable} -m dlrl_jax.cli export --model {model_dir} --out "$FULL/out"; echo "status $?"; '
              f'ls -A "$FULL"; cat "$FULL/out/notes.txt"')
    result = _in_tiny_tmpfs(tmp_path, script)
    full = tmp_path / "full"
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"dlrl-jax export: error: out of disk space at {full}/out/model.safetensors (No space left on device" \
           in result.stderr
    assert result.stdout.split() == ["status", "74", "out", "old"]  # no temporary folder left, notes intact


@pytest.mark.slow  # a training start-up (about 15 s on 2 cores)
def test_a_full_disk_during_training_is_one_line(tmp_path):
    script = (f'{sys.executable} -m dlrl_jax.cli train --set sft.steps=0 --set task.train_size=64 '
              '--set task.eval_size=8 --set algorithm.prompts_per_batch=2 --set algorithm.group_size=4 '
              '--set run.iterations=1 --set run.tensorboard=false --set run.progress=false '
              '--set run.out_dir="$FULL/run"; echo "status $?"; ls "$FULL/run"')
    result = _in_tiny_tmpfs(tmp_path, script)
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"out of disk space at {tmp_path}/full/run/checkpoints (No space left on device" in result.stderr
    assert result.stdout.split()[-6:] == ["status", "74", "checkpoints", "config.json", "metrics.jsonl", "run.lock"]
