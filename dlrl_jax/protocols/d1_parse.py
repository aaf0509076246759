"""d1's evaluation parsers (dllm-reasoning/d1 eval/parse_and_get_acc.py, with eval/parser_helper.py),
ported as the code computes them. EGSPO's eval/parse_and_get_acc.py and get_and_save_metrics.py hold
the same four parse functions and the same parser_helper.py, byte for byte, so the "egspo" protocol
uses these too.

The text they read is what d1's eval.py saves as "generations": the last gen_length tokens decoded
with `skip_special_tokens=False`, so end-of-turn and padding tokens ("<|eot_id|>", "<|endoftext|>")
stay in the text (Sudoku's patterns stop at them).

GSM8K (`gsm8k_answer`): the first `\\boxed{...}` (regex `\\boxed{(.*?)}`: up to the first "}", on one
line) whose stripped content is not empty or only dots and is a float, or else holds a number
(`-?\\d+\\.?\\d*`, the first one); only when no box gives one, the text of the first
<answer>...</answer> (DOTALL), stripped, as a float, else its *last* number. Correct when that float
equals the ground truth, a float (d1's gsm8k.py reads "#### n" with `\\$?([\\d,]+(?:\\.\\d+)?)`, so
a negative reference is None and never matched: `gsm8k_truth`).
MATH (`math_answer`): remove_boxed(last_boxed_only_string(text)); with no box at all that is the
whole text; an unclosed box raises, and then, or when the result is empty, the first
<answer>...</answer> stripped. Correct when is_equiv(answer, the reference `answer` string).
Countdown (`countdown_expression`): the same last box (no box: the whole text; an unclosed box: the
first <answer>...</answer>, else the whole text); "\\div" "\\times" "\\cdot" become / * *; where
`([0-9+\\-*/() ]+)=[0-9. ]+` is found, the part before its "=". Correct when its digit runs are the
given numbers as a multiset and it evaluates within 1e-5 of the target (`countdown_correct`).
Sudoku (`sudoku_solution`): the first of five patterns that captures non-blank text, whitespace
removed, padded with "0" or cut to 16; the score is the blank cells of the puzzle it fills as the
given solution does, micro-averaged over all blanks of the set (`sudoku_cells`).

Where the official code calls eval() on the model's expression, this calls
`dlrl_jax.rewards.countdown.python_value`, an evaluator of the same grammar with Python's numeric
semantics (it refuses integer powers above 100,000 bits, where eval would run for hours).
"""

from __future__ import annotations

import re

from dlrl_jax.rewards.countdown import python_value
from dlrl_jax.rewards.math_strings import equivalent, last_boxed, unbox

_FIRST_BOX = re.compile(r"\\boxed{(.*?)}")  # lazy and without DOTALL: the first "}" on the same line
_NUMBER = re.compile(r"-?\d+\.?\d*")
_DOTS = re.compile(r"^\.+$")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_GSM8K_REFERENCE = re.compile(r"####\s*\$?([\d,]+(?:\.\d+)?)")


def _number(text: str, which: int) -> float | None:
    """float(text), else float of its `which`-th number (0: first, -1: last), else None."""
    try:
        return float(text)  # (also "nan", "inf", "1e3", "1_000": Python's float syntax)
    except ValueError:
        numbers = _NUMBER.findall(text)
        if not numbers:
            return None
        try:
            return float(numbers[which])
        except ValueError:
            return None


def gsm8k_answer(text: str) -> float | None:
    for content in _FIRST_BOX.findall(text):
        content = content.strip()
        if not content or _DOTS.match(content):  # ("..." is one of these)
            continue
        value = _number(content, 0)
        if value is not None:
            return value
    found = _ANSWER.search(text)
    if found and found.group(1).strip():
        return _number(found.group(1).strip(), -1)
    return None


def gsm8k_truth(answer) -> float | None:
    """The reference as d1's gsm8k.py makes it: a number stays a float; a record's answer string goes
    through d1's "#### n" pattern, so "-3" (no match) is None and "1,000" is 1000.0."""
    if answer is None or isinstance(answer, bool):
        return None
    if isinstance(answer, (int, float)):
        return float(answer)
    found = _GSM8K_REFERENCE.search("#### " + str(answer))
    return float(found.group(1).replace(",", "")) if found else None


def gsm8k_correct(text: str, truth: float | None) -> bool:
    answer = gsm8k_answer(text)
    return answer is not None and answer == truth


def math_answer(text: str) -> str | None:
    box = last_boxed(text)
    answer = None if box is None else unbox(box)  # None: the official remove_boxed(None) raised
    if not answer:
        found = _ANSWER.search(text)
        if found:
            answer = found.group(1).strip()
    return answer


def is_equiv(candidate, reference) -> bool:
    """parser_helper.is_equiv: floats compared within 1e-6, strings by strip_string (raw on error)."""
    if isinstance(candidate, float) or isinstance(reference, float):
        try:
            return abs(float(candidate) - float(reference)) < 1e-6
        except (TypeError, ValueError):
            return False
    if candidate is None or reference is None:
        return candidate is None and reference is None
    return equivalent(candidate, reference)


def math_correct(text: str, reference) -> bool:
    answer = math_answer(text)
    return answer is not None and is_equiv(answer, reference)


def d1_remove_boxed(box: str) -> str:
    return unbox(box)


def countdown_expression(text: str, remove_boxed=d1_remove_boxed) -> str:
    """The expression the parser checks. `remove_boxed` raises where the official one does (d1's
    never raises; ESPO's raises on anything but a \\boxed form)."""
    try:
        box = last_boxed(text)
        if box is None:
            raise ValueError("unclosed box")  # the official remove_boxed(None) raises a TypeError
        equation = remove_boxed(box)
    except ValueError:
        found = _ANSWER.search(text)
        equation = found.group(1).strip() if found else text
    equation = equation.replace("\\div", "/").replace("\\times", "*").replace("\\cdot", "*")
    before_equals = re.search(r"([0-9+\-*/() ]+)=[0-9. ]+", equation)
    return before_equals.group(1).strip() if before_equals else equation


_ALLOWED = re.compile(r"^[\d+\-*/().\s]+$")
_DIGIT_RUNS = re.compile(r"\d+")


def countdown_correct(expression: str, numbers, target) -> bool:
    try:  # (int() refuses a run of over 4300 digits; the official bare except returns False)
        used = sorted(int(n) for n in _DIGIT_RUNS.findall(expression))
    except ValueError:
        return False
    if used != sorted(numbers) or target is None:
        return False
    if not _ALLOWED.match(expression):
        return False  # the official evaluates to inf
    try:
        value = python_value(expression.strip())
        return abs(value - target) < 1e-5
    except (ValueError, ArithmeticError, TypeError):  # where eval raises: inf, never within 1e-5
        return False


_SUDOKU_PATTERNS = tuple(re.compile(p, re.DOTALL) for p in (
    r"<answer>.*?```\s*([\d\s]+)```",
    r"<answer>(.*?)(?:<\|eot_id\|>|<\|endoftext\|>|</answer>)",
    r"</answer>\s*(.*?)(?:<\|eot_id\|>|<\|endoftext\|>|$)",
    r".*?(\d{16})\s*</answer>",
    r"\b(\d{16})\b",
))


def sudoku_solution(text: str) -> str:
    """The grid the parser reads: the first pattern whose capture is not blank, whitespace removed
    ("" when none is)."""
    solution = ""
    for pattern in _SUDOKU_PATTERNS:
        found = pattern.search(text)
        if found and found.group(1).strip():
            solution = found.group(1).strip()
            break
    return re.sub(r"\s", "", solution)


def sudoku_cells(text: str, puzzle: str, solution: str) -> tuple[int, int]:
    """(blank cells filled as in `solution`, blank cells of `puzzle`)."""
    blanks = [i for i in range(16) if puzzle[i] == "0"]
    grid = sudoku_solution(text)
    if not grid:
        return 0, len(blanks)
    grid = grid[:16].ljust(16, "0")
    return sum(grid[i] == solution[i] for i in blanks), len(blanks)
