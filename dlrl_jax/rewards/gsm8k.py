"""GSM8K reward (d1's five terms, max 4.0), or ESPO's 1/0 correctness.

answer = the text after the last "<answer>" up to the next "</answer>", stripped.
  correctness 2.0 if answer == the reference answer (both stripped, and commas dropped from numbers);
  integer     0.5 if answer is made of ASCII digits only;
  strict      0.5 if the whole text is "<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>\\n";
  soft        0.5 if the text starts with "<reasoning>...</reasoning>", blanks, "<answer>...</answer>";
  xml count   0.125 for each of "<reasoning>\\n", "\\n</reasoning>\\n", "\\n<answer>\\n", "\\n</answer>" that
              occurs exactly once, minus 0.001 per character after the closing tag (both the
              "\\n</answer>\\n" and the "\\n</answer>" forms, as in d1).
The format patterns match across lines (DOTALL), so multi-line reasoning counts.
"""

from __future__ import annotations

import re

_STRICT = re.compile(r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$", re.DOTALL)
_SOFT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)


def extract_answer(text: str) -> str:
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


def _normalise(answer: str) -> str:
    return answer.strip().replace(",", "") if re.fullmatch(r"[\d,]+(\.\d+)?", answer.strip()) else answer.strip()


def xml_count(text: str) -> float:
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        count -= len(text.split("\n</answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count


def gsm8k_reward(completion: str, example: dict, correctness_only: bool = False) -> float:
    answer = extract_answer(completion)
    correct = _normalise(answer) == _normalise(str(example["answer"]))
    if correctness_only:
        return 1.0 if correct else 0.0
    total = 2.0 if correct else 0.0
    total += 0.5 if answer.isascii() and answer.isdigit() else 0.0
    total += 0.5 if _STRICT.match(completion) else 0.0
    total += 0.5 if _SOFT.match(completion) else 0.0
    return total + xml_count(completion)


def validate_example(example: dict, index: int) -> None:
    if not isinstance(example.get("answer"), (str, int, float)) or isinstance(example.get("answer"), bool):
        raise ValueError(f"examples[{index}]['answer'] must be the reference answer (a string or number), "
                         f"got {example.get('answer')!r}")
