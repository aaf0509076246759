"""`dlrl-jax rescore --protocol P --task T FILE...`: a paper's accuracy parser over saved generations.

Files:
  *.json   d1's generation files ({"generations": [{"question", "generations", "ground_truth"}, ...]};
           code: EGSPO's HumanEval / MBPP files, the ground truth its test text),
           as d1's, EGSPO's and ESPO's eval.py write them, one per GPU rank). Several files are one
           setup, summed as parse_and_get_acc.py sums a setup: correct over processed (Sudoku: correct
           cells over blank cells), x 100. Files named as d1 names them ("<setup>_<rank>_generations.json")
           must share one setup: the official script would report different setups apart. The
           saved text is read as it is (special tokens kept), by every protocol, "dlrl" included.
  *.jsonl  `dlrl-jax eval` results (eval_<task>_<length>.jsonl): each row's "record" is the ground
           truth. The official parsers read the row's "raw_completion" (the completion decoded with
           special tokens kept, as the papers' eval.py saves it) where a row has one, else its
           "completion" (special tokens dropped: Sudoku's patterns that stop at <|eot_id|> can read
           differently; a note says so). The "dlrl" protocol reads "completion", wrapped in
           <answer></answer> where the folder's eval_meta.json says prompt_style "plain", as eval does.
Anything malformed stops with one line naming the file and the entry; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import re

from dlrl_jax.protocols.parsers import ProtocolError, check, score_many
from dlrl_jax.protocols.records import record_from_d1_entry

_D1_NAME = re.compile(r"(.+)_\d+_generations\.json$")  # parse_and_get_acc.py extract_setup_name


class RescoreError(ValueError):
    """An unreadable or malformed generation file; the message names the file, the entry and the fix."""


def _load_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise RescoreError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise RescoreError(f"{path}: not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise RescoreError(f"{path} line {e.lineno} column {e.colno}: not valid JSON ({e.msg})") from None


def d1_file_items(path: str, task: str):
    """(where, text, record) of every entry of a d1 generation file."""
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("generations"), list):
        raise RescoreError(f"{path}: a d1 generation file is an object whose 'generations' is a list of "
                           "entries {question, generations, ground_truth}")
    for i, entry in enumerate(data["generations"]):
        where = f"{path} generations[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("generations"), str):
            raise RescoreError(f"{where}: needs 'generations', the generated text (a string)")
        try:
            record = record_from_d1_entry(task, entry)
        except ProtocolError as e:
            raise RescoreError(f"{where}: {e}") from None
        yield where, entry["generations"], record


def _prompt_style(path: str) -> str:
    meta = os.path.join(os.path.dirname(os.path.abspath(path)), "eval_meta.json")
    if not os.path.exists(meta):
        return "chat"
    style = _load_json(meta)
    return style.get("prompt_style", "chat") if isinstance(style, dict) else "chat"


def eval_file_items(path: str, protocol: str, note=print):
    """(where, text, record) of every row of a `dlrl-jax eval` results file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise RescoreError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise RescoreError(f"{path}: not UTF-8 text ({e.reason})") from None
    plain = protocol == "dlrl" and _prompt_style(path) == "plain"
    noted = False
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path} line {line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise RescoreError(f"{where}: not valid JSON ({e.msg}); each line must be one eval row") from None
        if not isinstance(row, dict) or not isinstance(row.get("completion"), str):
            raise RescoreError(f"{where}: an eval row needs 'completion' (a string)")
        if not isinstance(row.get("record"), dict):
            raise RescoreError(f"{where}: the row holds no ground truth ('record'): it was written by a "
                               "`dlrl-jax eval` older than rescore; run the evaluation again to rescore it")
        text = row["completion"]
        if protocol != "dlrl":
            if isinstance(row.get("raw_completion"), str):
                text = row["raw_completion"]
            elif not noted:
                note(f"[dlrl-jax] note: {path} rows have no 'raw_completion' (special tokens kept); the {protocol} "
                     "parser reads 'completion', with special tokens dropped")
                noted = True
        if plain:
            text = f"<answer>{text.strip()}</answer>"
        yield where, text, row["record"]


def _check_one_setup(paths: list[str]) -> None:
    setups = {}
    for path in paths:
        found = _D1_NAME.match(os.path.basename(path))
        if found:
            setups.setdefault(found.group(1), path)
    if len(setups) > 1:
        names = ", ".join(f"{s} ({p})" for s, p in setups.items())
        raise RescoreError(f"the files belong to different setups: {names}; rescore one setup at a time")


def rescore(protocol: str, task: str, paths: list[str], note=print) -> dict:
    """{"correct", "total", "accuracy" (percent), "files": [{"path", "correct", "total"}]}."""
    check(protocol, task)
    if not paths:
        raise RescoreError("give one or more generation files (d1's *.json or eval_*.jsonl)")
    _check_one_setup(paths)
    files = []
    for path in paths:
        if path.endswith(".json"):
            items = d1_file_items(path, task)
        elif path.endswith(".jsonl"):
            items = eval_file_items(path, protocol, note)
        else:
            raise RescoreError(f"{path}: unknown kind of file; give d1's generation files (.json) or "
                               "`dlrl-jax eval` results (.jsonl)")
        items = list(items)
        try:  # one batch per file: code runs all its programs in one parallel sandbox batch
            scored = score_many(protocol, task, [text for _, text, _ in items], [record for _, _, record in items])
        except ProtocolError as e:
            where = items[e.index][0] if e.index is not None else path
            raise RescoreError(f"{where}: {e}") from None
        files.append({"path": path, "correct": sum(c for c, _ in scored), "total": sum(t for _, t in scored)})
    correct = sum(f["correct"] for f in files)
    total = sum(f["total"] for f in files)
    return {"correct": correct, "total": total, "accuracy": 100.0 * correct / total if total else 0.0,
            "files": files}


def format_report(protocol: str, task: str, result: dict) -> str:
    unit = "blank cells" if task == "sudoku" else "generations"
    lines = [f"{f['path']}: {f['correct']} / {f['total']}" for f in result["files"]]
    lines.append(f"{protocol} {task}: {result['correct']} / {result['total']} {unit} correct = "
                 f"{result['accuracy']:.2f}%")
    return "\n".join(lines)
