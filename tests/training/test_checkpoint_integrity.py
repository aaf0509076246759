"""Checkpoint integrity on resume (issue 26, findings 1 and 14): every checkpoint carries a manifest of
sha256 hashes (checked here against hashlib run over the files, not against the writer); a flipped
byte inside an array file is named, the checkpoint set aside and the previous one used; restored
NaN parameters are refused the same way; a checkpoint without a manifest restores with one warning;
a passing shortage of threads or memory while restoring moves nothing and drops no metrics row."""

import dataclasses
import errno
import hashlib
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax.app import train as app_train
from dlrl_jax.app.preemption import TemporaryFailure
from dlrl_jax.checkpoints import CheckpointError
from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer
from dlrl_jax.config import Config, to_dict
from dlrl_jax.folders.manifest import MANIFEST, ManifestMismatch, verify_manifest


def _cfg(out):
    return dataclasses.replace(Config(), run=dataclasses.replace(Config().run, out_dir=str(out)))


def _state(value):
    return {"params": {"w": jnp.full((4, 8), value, jnp.float32), "b": jnp.arange(8, dtype=jnp.float32) * value},
            "key": jnp.arange(2, dtype=jnp.uint32)}


def _run_folder(tmp_path, values):
    """A run folder with RL checkpoints at steps 1..len(values) (params filled with each value) and a
    metrics.jsonl of one RL row per iteration up to the newest."""
    out = tmp_path / "run"
    cfg = _cfg(out)
    checkpointer = TrainStateCheckpointer(str(out / "checkpoints"), max_to_keep=5)
    for step, value in enumerate(values, 1):
        checkpointer.save(step, _state(value), {"iteration": step, "config": to_dict(cfg), "summary": {}})
    checkpointer.wait()
    with open(out / "metrics.jsonl", "w") as f:
        for step in range(len(values)):
            f.write(json.dumps({"phase": "rl", "step": step, "loss": float(step)}) + "\n")
    return cfg, checkpointer


def _resume_point(checkpointer, log):
    found = app_train._newest_readable(checkpointer, log)
    return app_train._ResumePoint("rl", checkpointer, *found)


def _array_files(step_folder):
    """The files holding array chunks (Orbax's OCDBT data files) of a checkpoint step."""
    return sorted(os.path.join(root, name) for root, _, names in os.walk(os.path.join(step_folder, "state"))
                  if os.path.basename(root) == "d" for name in names)


def test_every_file_of_a_step_is_listed_with_its_sha256(tmp_path):
    _, checkpointer = _run_folder(tmp_path, [1.0, 2.0])
    for step in (1, 2):
        folder = checkpointer.step_folder(step)
        lines = open(os.path.join(folder, MANIFEST)).read().splitlines()
        listed = {line[66:]: line[:64] for line in lines}
        on_disk = {os.path.relpath(os.path.join(root, n), folder) for root, _, names in os.walk(folder) for n in names}
        assert set(listed) == on_disk - {MANIFEST}  # every file, the manifest itself aside
        for rel, digest in listed.items():
            assert digest == hashlib.sha256(open(os.path.join(folder, rel), "rb").read()).hexdigest()
        assert _array_files(folder) and checkpointer.verify(step) is True
    checkpointer.close()


def test_a_flipped_byte_in_an_array_file_is_named_set_aside_and_the_previous_used(tmp_path):
    cfg, checkpointer = _run_folder(tmp_path, [1.0, 2.0, 3.0])
    victim = _array_files(checkpointer.step_folder(3))[0]
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(victim, "wb").write(bytes(data))
    with pytest.raises(ManifestMismatch, match=os.path.relpath(victim, checkpointer.step_folder(3))):
        verify_manifest(checkpointer.step_folder(3))
    log = []
    resume = _resume_point(checkpointer, log.append)
    [line] = log
    rel = os.path.relpath(victim, checkpointer.step_folder(3))
    assert "checkpoint step 3" in line and "fails its integrity check" in line and rel in line, line
    assert "using the previous one" in line
    assert resume.step == 2 and resume.verified
    assert os.listdir(checkpointer.directory + ".unreadable")[0].startswith("3-")
    tree, meta = app_train._restore(resume, _state(0.0), cfg, log.append)
    np.testing.assert_array_equal(np.asarray(tree["params"]["w"]), 2.0)
    assert meta["iteration"] == 2
    checkpointer.close()


def test_restored_nan_parameters_are_refused_like_an_unreadable_checkpoint(tmp_path):
    # a NaN saved (a diverged step, or a bit flip before the manifest was made): its manifest matches
    cfg, checkpointer = _run_folder(tmp_path, [1.0, 2.0, float("nan")])
    log = []
    resume = _resume_point(checkpointer, log.append)
    assert resume.step == 3 and resume.verified and not log
    tree, meta = app_train._restore(resume, _state(0.0), cfg, log.append)
    assert meta["iteration"] == 2 and resume.step == 2
    np.testing.assert_array_equal(np.asarray(tree["params"]["b"]), np.arange(8) * 2.0)
    [line] = log
    assert "checkpoint step 3" in line and "is not finite" in line and "['params']['b']" in line, line
    assert "['params']['w']" in line and "['key']" not in line  # floating-point arrays only
    # the metrics of iterations after the checkpoint used are dropped (rows 0, 1 remain)
    assert [json.loads(x)["step"] for x in open(os.path.join(cfg.run.out_dir, "metrics.jsonl"))] == [0, 1]
    checkpointer.close()


def test_a_checkpoint_without_a_manifest_restores_with_one_warning(tmp_path):
    cfg, checkpointer = _run_folder(tmp_path, [1.0, 2.0])
    os.remove(os.path.join(checkpointer.step_folder(2), MANIFEST))  # as written before manifests existed
    log = []
    resume = _resume_point(checkpointer, log.append)
    assert resume.step == 2 and not resume.verified
    [line] = log
    assert "warning: checkpoint step 2" in line and "no manifest" in line
    tree, _ = app_train._restore(resume, _state(0.0), cfg, log.append)
    np.testing.assert_array_equal(np.asarray(tree["params"]["w"]), 2.0)
    # such a checkpoint, truncated, is still set aside as unreadable (what Orbax raises is all there is)
    for path in _array_files(checkpointer.step_folder(2)):
        os.truncate(path, 0)
    log.clear()
    tree, _ = app_train._restore(resume, _state(0.0), cfg, log.append)
    np.testing.assert_array_equal(np.asarray(tree["params"]["w"]), 1.0)
    assert any("checkpoint step 2" in x and "is unreadable" in x for x in log), log
    checkpointer.close()


@pytest.mark.parametrize("error", [RuntimeError("can't start new thread"),
                                   OSError(errno.EAGAIN, "Resource temporarily unavailable"),
                                   OSError(errno.ENOMEM, "Cannot allocate memory"), MemoryError()],
                         ids=["thread", "eagain", "enomem", "memoryerror"])
def test_a_passing_shortage_while_restoring_moves_nothing_and_drops_no_row(tmp_path, monkeypatch, error):
    """Finding 1: on main this set the good checkpoint aside and cut the metrics back, once per try."""
    cfg, checkpointer = _run_folder(tmp_path, [1.0, 2.0, 3.0])
    # the newest without a manifest too: only the error's kind can tell a shortage from damage there
    os.remove(os.path.join(checkpointer.step_folder(3), MANIFEST))
    metrics = open(os.path.join(cfg.run.out_dir, "metrics.jsonl")).read()

    def short(*_, **__):
        raise ValueError("restore failed") from error  # (Orbax wraps what its threads raise)

    for verified in (True, False):
        log = []
        resume = _resume_point(checkpointer, log.append)
        resume.step, resume.verified = (2, True) if verified else (3, False)
        monkeypatch.setattr(checkpointer, "restore", short)
        with pytest.raises(TemporaryFailure, match="nothing was moved or dropped: run the same command again"):
            app_train._restore(resume, _state(0.0), cfg, log.append)
        monkeypatch.undo()
        monkeypatch.setattr(checkpointer, "read_meta", short)
        with pytest.raises(TemporaryFailure, match=f"reading checkpoint step 3 in {checkpointer.directory}"):
            app_train._newest_readable(checkpointer, log.append)
        monkeypatch.undo()
        assert sorted(checkpointer.all_steps()) == [1, 2, 3]
        assert not os.path.exists(checkpointer.directory + ".unreadable")
        assert open(os.path.join(cfg.run.out_dir, "metrics.jsonl")).read() == metrics
    checkpointer.close()


def test_a_verified_checkpoint_that_fails_to_restore_is_kept(tmp_path, monkeypatch):
    """Its content is shown good by its manifest: whatever else fails, it is not set aside (one line,
    exit 2: not a passing shortage, so not a retry)."""
    cfg, checkpointer = _run_folder(tmp_path, [1.0, 2.0])
    resume = _resume_point(checkpointer, print)

    def mismatch(*_, **__):
        raise ValueError("Requested shape (4, 8) does not match the checkpoint")

    monkeypatch.setattr(checkpointer, "restore", mismatch)
    with pytest.raises(CheckpointError, match="restoring checkpoint step 2 .* nothing was moved or dropped"):
        app_train._restore(resume, _state(0.0), cfg, print)
    assert sorted(checkpointer.all_steps()) == [1, 2]
    checkpointer.close()


def test_an_export_carries_a_manifest_that_eval_checks(tmp_path, capsys):
    from dlrl_jax import checkpoints, cli, models
    from dlrl_jax.models.tokenizer import write_char_tokenizer

    source, export = str(tmp_path / "source"), str(tmp_path / "export")
    checkpoints.save_pretrained(models.init_model(models.preset("tiny"), seed=3), source)
    write_char_tokenizer(source)
    assert cli.main(["export", "--model", source, "--out", export]) == 0
    listed = dict(line.split("  ")[::-1] for line in open(os.path.join(export, MANIFEST)).read().splitlines())
    files = sorted(n for n in os.listdir(export) if n != MANIFEST)
    assert sorted(listed) == files and "model.safetensors" in files
    for name in files:
        assert listed[name] == hashlib.sha256(open(os.path.join(export, name), "rb").read()).hexdigest()
    # one byte of the weights flipped: `dlrl-jax eval` refuses in one line naming the file, before loading
    write_char_tokenizer(export)  # (the tokenizer beside it, added after the export: not in its manifest)
    weights = os.path.join(export, "model.safetensors")
    data = bytearray(open(weights, "rb").read())
    data[-5] ^= 0x01
    open(weights, "wb").write(bytes(data))
    argv = ["eval", "--model", export, "--task", "sudoku", "--gen-lengths", "16", "--num-examples", "2",
            "--prompt-style", "plain", "--no-progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--model {export} is not what was exported: {weights}: sha256" in err, err
    assert "export it again" in err
    assert not os.path.exists(os.path.join(export, "eval"))  # nothing evaluated


def test_a_damaged_or_hostile_manifest_is_a_mismatch_naming_it(tmp_path):
    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.bin").write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()  # the known sha256 of "abc" begins ba7816bf
    assert digest.startswith("ba7816bf")
    (folder / MANIFEST).write_text(f"{digest}  sub/a.bin\n")
    assert verify_manifest(str(folder)) is True
    for text, problem in ((f"{digest}  ../outside\n", "a path outside the folder"),
                          (f"{digest} sub/a.bin\n", "line 1 is not '<sha256>  <file>'"),
                          ("", "lists no files"),
                          (f"{digest}  sub/a.bin\n{'0' * 64}  sub/gone.bin\n", "listed in the manifest but missing")):
        (folder / MANIFEST).write_text(text)
        with pytest.raises(ManifestMismatch, match=problem) as caught:
            verify_manifest(str(folder))
        assert str(folder) in str(caught.value) and str(caught.value).count("\n") == 0
