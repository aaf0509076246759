"""Ground truth of a d1 generation-file entry as this project's record (`record_from_d1_entry`).

d1's eval.py saves each entry as {"question", "prompt_input", "generations", "ground_truth"}, the
ground truth as its data set classes return it (eval/gsm8k.py, math500.py, countdown.py, sudoku.py):
  gsm8k      the "#### n" number as a float (None where d1's pattern finds none: negative answers)
  math       MATH-500's "answer" string
  countdown  [numbers, target]; without that shape the parser reads "Numbers: [..]" and "Target: n"
             from the question
  sudoku     the solution string; the puzzle is read from the question: its first 16 characters if
             they are digits, else the 16 digits after "Sudoku puzzle: "
  code       EGSPO's eval/human_eval.py, mbpp.py: HumanEval's `test` (a `def check(candidate):`
             function), MBPP's test_imports + a blank line + its assert lines; which one it is is
             read from the text (a `def check(` line: HumanEval)
"""

from __future__ import annotations

import re

from dlrl_jax.protocols.parsers import ProtocolError


def _gsm8k_answer(truth):
    """A float reference as this project's answer string ("18", "0.5"); None stays None (never right)."""
    if truth is None:
        return None
    if isinstance(truth, bool) or not isinstance(truth, (int, float)):
        raise ProtocolError(f"'ground_truth' must be a number (d1 saves GSM8K's answer as a float), got {truth!r}")
    return str(int(truth)) if float(truth).is_integer() else repr(float(truth))


def _countdown(question: str, truth) -> dict:
    if isinstance(truth, list) and len(truth) == 2:
        numbers, target = truth
    else:  # the official fallback: read the question
        found_numbers = re.search(r"Numbers: \[([\d, ]+)\]", question, re.IGNORECASE)
        found_target = re.search(r"Target: (\d+)", question, re.IGNORECASE)
        if not (found_numbers and found_target):
            raise ProtocolError(f"'ground_truth' must be [numbers, target] (or the question must hold "
                                f"'Numbers: [..]' and 'Target: n'), got {truth!r}")
        numbers = [int(n.strip()) for n in found_numbers.group(1).split(",")]
        target = int(found_target.group(1))
    if not (isinstance(numbers, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)):
        raise ProtocolError(f"'ground_truth' numbers must be a list of integers, got {numbers!r}")
    return {"numbers": numbers, "target": target}


def _sudoku_puzzle(question: str) -> str:
    if len(question) >= 16 and all(c.isdigit() for c in question[:16]):
        return question[:16]
    found = re.search(r"Sudoku puzzle: ([0-9]{16})", question)
    if not found:
        raise ProtocolError("'question' must start with the 16-digit puzzle or hold 'Sudoku puzzle: ' and its "
                            f"16 digits (as d1's sudoku.py writes it), got {question[:60]!r}")
    return found.group(1)


def record_from_d1_entry(task: str, entry) -> dict:
    """This project's record for `task` from one entry of a d1 generation file."""
    if not isinstance(entry, dict):
        raise ProtocolError(f"an entry must be an object with 'generations' and 'ground_truth', got "
                            f"{type(entry).__name__}")
    if "ground_truth" not in entry:
        raise ProtocolError("the entry has no 'ground_truth'")
    question = entry.get("question", "")
    if not isinstance(question, str):
        raise ProtocolError(f"'question' must be a string, got {type(question).__name__}")
    truth = entry["ground_truth"]
    if task == "gsm8k":
        return {"question": question, "answer": _gsm8k_answer(truth), "solution": None}
    if task == "math":
        if not isinstance(truth, str):
            raise ProtocolError(f"'ground_truth' must be the reference answer string, got {truth!r}")
        return {"question": question, "answer": truth, "solution": None}
    if task == "countdown":
        return _countdown(question, truth)
    if task == "sudoku":
        if not isinstance(truth, str) or len(truth) != 16 or not truth.isdigit():
            raise ProtocolError(f"'ground_truth' must be the 16-digit solution, got {truth!r}")
        return {"puzzle": _sudoku_puzzle(question), "solution": truth}
    if task == "code":
        return _code(question, truth)
    raise ProtocolError(f"d1 generation files hold gsm8k, math, countdown, sudoku or code, not {task}")


def _code(question: str, truth) -> dict:
    """A HumanEval or MBPP record from EGSPO's saved ground truth. A HumanEval entry saves no entry
    point (EGSPO checks the program's first function), so its record has no `tests` of its own."""
    if not isinstance(truth, str) or not truth.strip():
        raise ProtocolError(f"'ground_truth' must be the test text (HumanEval's check function or MBPP's imports "
                            f"and asserts), got {truth!r}")
    if re.search(r"^def check\(", truth, re.MULTILINE):
        return {"question": question, "tests": None, "entry_point": None, "solution": None,
                "tests_in_prompt": False, "benchmark": "humaneval", "check_code": truth}
    imports, _, asserts = truth.partition("\n\n")
    test_list = [line for line in asserts.split("\n") if line.strip()]
    if not test_list:
        raise ProtocolError("'ground_truth' is neither a HumanEval test (no `def check(` line) nor MBPP's imports, a "
                            f"blank line and assert lines, got {truth[:80]!r}")
    test_imports = [line for line in imports.split("\n") if line.strip()]
    # (one test statement: the whole script, all or nothing, as pass@1 counts it)
    return {"question": question, "tests": [truth], "entry_point": None,
            "solution": None, "tests_in_prompt": True, "benchmark": "mbpp", "test_list": test_list,
            "test_imports": test_imports}
