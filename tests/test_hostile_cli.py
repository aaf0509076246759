"""Hostile use of the commands (issue 26): `eval` on changed data, adapter weights or tokenizer files
refuses to reuse the old rows (findings 5-7); two evaluations into one folder (9); negative
--num-examples and --batch-size 0 (10); `export` without the tokenizer (11); a tokenizer larger than the
model's vocabulary (12); out-of-range --prompt-ids (13); `--resume` after the training data changed (8).
Each refusal is one line naming the file or flag and the fix, exit status 2. The cases share one tiny
model folder; the refusals happen before anything compiles."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

from dlrl_jax import checkpoints, cli, config, models, tasks
from dlrl_jax.app import train as train_driver
from dlrl_jax.app.preemption import Preempted, StopFlag, received_name
from dlrl_jax.app.run_lock import RunLock
from dlrl_jax.data import readers
from dlrl_jax.checkpoints import peft
from dlrl_jax.models.lora import LoRASettings, add_lora, trainable_mask
from dlrl_jax.models.tokenizer import write_char_tokenizer
from tests.one_line_errors import fails_in_one_line, quiet_transformers  # noqa: F401  (an autouse fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_fails_in_one_line = fails_in_one_line


def _sudoku_file(path, seed):
    with open(path, "w") as f:
        for r in tasks.get("sudoku").generate(seed, 6):
            f.write(json.dumps({"puzzle": r["puzzle"], "solution": r["solution"]}) + "\n")
    return str(path)


# the shapes of tests/models/test_peft_cli.py's evaluations (and its adapter's): one compiled program each
# in a session (the suite shares a compilation cache)
EVAL = ["--task", "sudoku", "--prompt-style", "plain", "--gen-lengths", "16", "--block-length", "8",
        "--batch-size", "6", "--no-progress"]


def test_eval_refuses_old_rows_after_data_adapter_or_tokenizer_changed(model_dir, tmp_path, capsys):
    model = str(tmp_path / "model")
    shutil.copytree(model_dir, model)
    data = _sudoku_file(tmp_path / "data.jsonl", 0)
    out = str(tmp_path / "eval")
    argv = ["eval", "--model", model, "--data", data, "--out", out, *EVAL]
    assert cli.main(argv) == 0
    original = open(data).read()
    _sudoku_file(data, 1)  # the same file name, other puzzles
    err = _fails_in_one_line(capsys, argv)
    assert f"holds results on other contents of --data {data}" in err and "use another --out" in err
    open(data, "w").write(original)
    template = os.path.join(model, "chat_template.jinja")
    saved = open(template).read()
    open(template, "w").write(saved.replace("<|assistant|>", "<|assistant|> "))
    assert "holds results of a different model" in _fails_in_one_line(capsys, argv)
    open(template, "w").write(saved)
    with open(os.path.join(model, "tokenizer.model"), "wb") as f:  # a SentencePiece model appears
        f.write(b"\x0a\x05hello")
    assert "holds results of a different model" in _fails_in_one_line(capsys, argv)
    os.remove(os.path.join(model, "tokenizer.model"))
    assert cli.main(argv) == 0  # all restored: it resumes, every row already there
    assert "resuming, 6 of 6 already done" in capsys.readouterr().out
    assert len(open(os.path.join(out, "eval_sudoku_16.jsonl")).readlines()) == 6


def _save_adapter(model_dir, folder, seed):
    adapted = add_lora(checkpoints.from_pretrained(model_dir), LoRASettings(rank=4, alpha=8.0, targets=("q", "v", "o", "down"),
                                                                         dropout=0.05))
    graphdef, params = models.split(adapted)
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda x, m: x + 0.3 * rng.standard_normal(x.shape).astype(x.dtype) if m else x,
                          params, trainable_mask(params))
    peft.save_adapter(nnx.merge(graphdef, params), folder)


def test_eval_refuses_old_rows_after_the_adapter_weights_changed(model_dir, tmp_path, capsys):
    adapter = str(tmp_path / "adapter")
    _save_adapter(model_dir, adapter, 0)
    argv = ["eval", "--model", model_dir, "--adapter", adapter, "--num-examples", "6", *EVAL]
    assert cli.main(argv) == 0  # (into ADAPTER/eval)
    _save_adapter(model_dir, adapter, 1)  # retrained in place: the same path, other weights
    err = _fails_in_one_line(capsys, argv)
    assert f"holds results of other adapter weights or config in --adapter {adapter}" in err


def test_two_evaluations_into_one_folder_and_bad_counts(model_dir, tmp_path, capsys):
    out = str(tmp_path / "eval")
    argv = ["eval", "--model", model_dir, "--out", out, "--num-examples", "6", *EVAL]
    with RunLock(out, log=lambda *_: None):  # another `dlrl-jax eval` holds the folder
        err = _fails_in_one_line(capsys, argv)
    assert f"{out}/run.lock: another run is writing to this folder" in err and err.endswith("or use another --out\n")
    assert not os.path.exists(os.path.join(out, "eval_meta.json"))
    for flag, value, message in (("--num-examples", "-3", "--num-examples must be >= 0 (0: all records), got -3"),
                                 ("--batch-size", "0", "--batch-size must be a positive integer, got 0")):
        assert message in _fails_in_one_line(capsys, ["eval", "--model", model_dir, "--out", out, *EVAL, flag, value])
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    err = _fails_in_one_line(capsys, ["eval", "--model", model_dir, "--out", str(tmp_path / "a" / "ev"), *EVAL])
    assert err.endswith("/a/ev: Too many levels of symbolic links; choose another path\n")


def test_export_carries_the_tokenizer_and_sample_checks_prompt_ids(model_dir, tmp_path, capsys):
    out = str(tmp_path / "export")
    os.makedirs(out)
    open(os.path.join(out, "vocab.json"), "w").write("{}")  # an earlier export's (another model's) tokenizer file
    assert cli.main(["export", "--model", model_dir, "--out", out]) == 0
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert open(os.path.join(out, name), "rb").read() == open(os.path.join(model_dir, name), "rb").read()
    assert not os.path.exists(os.path.join(out, "vocab.json"))
    capsys.readouterr()
    assert cli.main(["sample", "--model", out, "--prompt", "12", "--no-chat", "--gen-length", "8", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["completion_ids"][0]) == 8
    err = _fails_in_one_line(capsys, ["sample", "--model", out, "--prompt-ids", "50 -3 127 128", "--gen-length", "8"])
    assert "--prompt-ids must be token ids in [0, 128) (the model's vocabulary), got -3 128" in err


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path, capsys):
    small = str(tmp_path / "small")
    cfg = models.preset("tiny")
    checkpoints.save_pretrained(models.init_model(type(cfg)(**{**vars(cfg), "vocab_size": 64}), seed=0), small)
    write_char_tokenizer(small)  # 103 tokens (96 characters and 7 specials)
    err = _fails_in_one_line(capsys, ["eval", "--model", small, *EVAL, "--num-examples", "2"])
    assert f"{small}: the tokenizer has 103 tokens but the model's vocabulary has 64" in err
    err = _fails_in_one_line(capsys, ["sample", "--model", small, "--prompt", "12", "--gen-length", "8"])
    assert "the tokenizer has 103 tokens but the model's vocabulary has 64" in err


# tests/training/test_resume.py's settings (its compiled programs), on a training file
TRAIN = ["sft.steps=2", "sft.batch_size=8", "task.eval_size=8", "algorithm.prompts_per_batch=2",
         "algorithm.group_size=4", "run.save_every=1", "run.eval_every=2", "run.tensorboard=false",
         "run.progress=false", "run.iterations=1"]


def test_the_data_record_refuses_changed_bytes(tmp_path):
    """The check itself, without a training run (the CLI case below is slow): the record written at a
    start, a resume with the same bytes passes, with other bytes (the same name) is refused by name."""
    data = tmp_path / "train.jsonl"
    data.write_text('{"puzzle": "1234341221434321", "solution": "1234341221434321"}\n')
    cfg = config.load(None, [f"task.train_file={data}", f"run.out_dir={tmp_path / 'run'}"])
    train_driver._check_same_data(cfg, resuming=False)
    record = tmp_path / "run" / "data_sha256.json"
    assert json.loads(record.read_text()) == {"task.train_file": hashlib.sha256(data.read_bytes()).hexdigest()}
    train_driver._check_same_data(cfg, resuming=True)
    data.write_text(data.read_text() * 2)
    with pytest.raises(config.ConfigError, match=rf"task.train_file {data} changed since this run started"):
        train_driver._check_same_data(cfg, resuming=True)
    train_driver._check_same_data(cfg, resuming=False)  # a fresh start records the new bytes
    train_driver._check_same_data(cfg, resuming=True)


@pytest.mark.slow  # a training run and two resumes (about 30 s on 2 cores); the check itself is tested above
def test_resume_refuses_a_changed_training_file(tmp_path, capsys):
    data = str(tmp_path / "train.jsonl")
    with open(data, "w") as f:
        for r in tasks.get("sudoku").generate(0, 24):
            f.write(json.dumps({"puzzle": r["puzzle"], "solution": r["solution"]}) + "\n")
    out = str(tmp_path / "run")
    argv = ["train"] + [a for s in TRAIN + [f"task.train_file={data}", f"run.out_dir={out}"] for a in ("--set", s)]
    assert cli.main(argv) == 0
    record = os.path.join(out, "data_sha256.json")
    assert json.load(open(record)) == {"task.train_file": readers.source_fingerprint(data)}
    original = open(data).read()
    lines = original.splitlines(keepends=True)
    open(data, "w").write("".join(lines[1:] + lines[:1]))  # the same records, another order: another split
    config_before = open(os.path.join(out, "config.json")).read()
    err = _fails_in_one_line(capsys, argv + ["--resume"])
    assert f"run.resume: task.train_file {data} changed since this run started" in err
    assert f"restore the original file, or start a new run.out_dir (or delete {record} to continue" in err
    assert open(os.path.join(out, "config.json")).read() == config_before  # a refused resume writes nothing
    open(data, "w").write(original)
    assert cli.main(argv + ["--resume"]) == 0  # the original bytes: it resumes (from its final checkpoint)
    assert "resumed from the checkpoint at iteration 1" in capsys.readouterr().out


def test_sigint_is_handled_as_sigterm():
    """Ctrl-C (SIGINT) takes SIGTERM's path: at start-up it stops at once, saving nothing (there is
    nothing yet); once the phases can save it only sets the flag they check (no KeyboardInterrupt
    traceback from wherever the main thread was). The handler before is restored after (Python's
    default_int_handler, or SIG_IGN where the test process was started in the background)."""
    before = signal.getsignal(signal.SIGINT)
    with StopFlag() as stop:
        with pytest.raises(Preempted, match="stopped by SIGINT during start-up, before anything was saved"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # (the handler runs at the next bytecode)
    assert received_name() == "SIGINT"
    with StopFlag() as stop:
        stop.defer()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert stop.set
    assert signal.getsignal(signal.SIGINT) is before  # restored


@pytest.mark.slow  # an evaluation process stopped and rerun (about 20 s on 2 cores); the handler is tested above
def test_ctrl_c_during_eval_stops_between_batches_with_one_line(model_dir, tmp_path):
    out = str(tmp_path / "ev")
    argv = ["eval", "--model", model_dir, "--out", out, "--num-examples", "96", *EVAL[:-3], "--batch-size", "2",
            "--no-progress"]
    rows = os.path.join(out, "eval_sudoku_16.jsonl")
    proc = subprocess.Popen([sys.executable, "-m", "dlrl_jax.cli"] + argv, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    deadline = time.time() + 240
    while not (os.path.exists(rows) and os.path.getsize(rows) > 0):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75 and err.count("\n") == 1, err
    assert err.startswith("dlrl-jax eval: preempted: stopped by SIGINT with ") and "run the same command again" in err
    written = [json.loads(line)["index"] for line in open(rows)]
    assert written == list(range(len(written))) and len(written) % 2 == 0 and len(written) < 96  # whole batches


def test_plot_on_a_torn_metrics_file(tmp_path, capsys):
    """A torn last line (a run killed mid-write, or still writing) is dropped with a note; a broken line
    before the end is one line naming it."""
    from dlrl_jax.app.metrics import read_metrics

    run = tmp_path / "run"
    run.mkdir()
    rows = '{"phase": "eval", "step": 0, "reward": 0.5}\n{"phase": "rl", "step": 0, "rew'
    (run / "metrics.jsonl").write_text(rows)
    torn = []
    assert read_metrics(str(run), torn_tail=torn) == [{"phase": "eval", "step": 0, "reward": 0.5}] and torn == [2]
    (run / "metrics.jsonl").write_text(rows + '\n{"phase": "eval", "step": 1, "reward": 0.6}\n')
    err = _fails_in_one_line(capsys, ["plot", str(run)])
    assert f"{run}/metrics.jsonl line 2: not a JSON row (" in err and "remove or repair" in err


def test_home_relative_paths_on_the_command_line_are_expanded(model_dir, monkeypatch):
    """`--model=~/m` reaches the program with its "~" (a shell expands it only at the start of a word)."""
    monkeypatch.setenv("HOME", os.path.dirname(model_dir))
    name = os.path.basename(model_dir)
    assert cli.main(["export", f"--model=~/{name}", f"--out=~/exported"]) == 0
    assert os.path.isfile(os.path.join(os.path.dirname(model_dir), "exported", "tokenizer.json"))


def test_a_truncated_adapter_is_one_line(model_dir, tmp_path, capsys):
    adapter = str(tmp_path / "adapter")
    _save_adapter(model_dir, adapter, 0)
    weights = os.path.join(adapter, "adapter_model.safetensors")
    os.truncate(weights, os.path.getsize(weights) // 2)
    for argv in (["sample", "--model", model_dir, "--adapter", adapter, "--prompt-ids", "5 6", "--gen-length", "8"],
                 ["export", "--model", model_dir, "--adapter", adapter, "--out", str(tmp_path / "merged")]):
        err = _fails_in_one_line(capsys, argv)
        assert f"{weights} is truncated or corrupt (" in err and "download or export the adapter again" in err
