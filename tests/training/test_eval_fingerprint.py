"""`dlrl-jax eval` results belong to the model they came from: the same bytes (even moved to another
folder) resume; a retrained model, or one flipped byte of the weights with size and modification time
restored, is refused by name instead of being counted as "already done"."""

import json
import os
import shutil

import pytest

from dlrl_jax import checkpoints, models
from dlrl_jax.models.tokenizer import write_char_tokenizer
from dlrl_jax.app.evaluation import EvalError, EvalSettings, evaluate_model


def _save(path, seed):
    checkpoints.save_pretrained(models.init_model(models.preset("tiny"), seed=seed), path)
    write_char_tokenizer(path)


def test_eval_results_are_tied_to_the_weights(tmp_path):
    model, out = str(tmp_path / "model"), str(tmp_path / "ev")
    _save(model, seed=3)
    settings = EvalSettings(model=model, task="sudoku", out_dir=out, gen_lengths=(16,), num_examples=4,
                            prompt_style="plain", block_length=8, batch_size=4, progress=False)
    evaluate_model(settings, log=lambda *_: None)
    fingerprint = json.load(open(os.path.join(out, "eval_meta.json")))["model_sha256"]
    assert len(fingerprint) == 64

    moved = str(tmp_path / "moved")  # the same model elsewhere: the same results, resumed
    shutil.copytree(model, moved)
    messages = []
    evaluate_model(EvalSettings(**dict(settings.__dict__, model=moved)), log=messages.append)
    assert messages == ["[dlrl-jax] eval sudoku @ 16: resuming, 4 of 4 already done"]

    weights = os.path.join(moved, "model.safetensors")  # one byte of a tensor flipped, size and time kept
    stat = os.stat(weights)
    with open(weights, "r+b") as f:
        f.seek(stat.st_size - 5)
        byte = f.read(1)
        f.seek(stat.st_size - 5)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # the export's manifest names the changed file first; without one (a folder that no export of ours
    # wrote) the results' fingerprint still refuses it
    with pytest.raises(EvalError, match=rf"--model {moved} is not what was exported: {weights}: sha256"):
        evaluate_model(EvalSettings(**dict(settings.__dict__, model=moved)), log=lambda *_: None)
    os.remove(os.path.join(moved, "SHA256SUMS"))
    with pytest.raises(EvalError, match=rf"{out} holds results of a different model .*{fingerprint[:12]} there"):
        evaluate_model(EvalSettings(**dict(settings.__dict__, model=moved)), log=lambda *_: None)

    _save(model, seed=4)  # retrained in place: same shapes, same file sizes, other weights
    with pytest.raises(EvalError, match="the model changed since.*use another --out, or delete"):
        evaluate_model(settings, log=lambda *_: None)
    rows = [json.loads(line) for line in open(os.path.join(out, "eval_sudoku_16.jsonl"))]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]  # the old results are untouched
    fresh = str(tmp_path / "ev2")  # another folder: the retrained model is evaluated afresh
    evaluate_model(EvalSettings(**dict(settings.__dict__, out_dir=fresh)), log=lambda *_: None)
    assert json.load(open(os.path.join(fresh, "eval_meta.json")))["model_sha256"] != fingerprint
