"""GSM8K rewards.

`official_gsm8k_reward` (reward set "d1": d1's diffu-grpo/reward_func.py, the same in EGSPO's
egspo/reward_func.py; the five functions its train script sums with weight 1, max 4.0), as the code
computes them:
  answer = text after the last "<answer>" up to the next "</answer>", stripped;
  correctness 2.0 if answer == the reference string exactly (no normalisation);
  integer     0.5 if answer.isdigit() (Python's Unicode notion of a digit);
  strict      0.5 if re.match(r"^<reasoning>\\n.*?\\n</reasoning>\\n<answer>\\n.*?\\n</answer>\\n$") matches,
              without DOTALL: `.` does not cross a line break, so reasoning or an answer of more
              than one line gets 0 here (and `$` also accepts one more trailing "\\n");
  soft        0.5 if re.match(r"<reasoning>.*?</reasoning>\\s*<answer>.*?</answer>") matches at the
              start, again without DOTALL (only the gap between the tags may span lines);
  xml count   as `xml_count` below.
`espo_gsm8k_reward` (reward set "espo": ESPO's espo/rewards.py `correctness_reward_func_gsm8k`):
1.0 if the extracted answer equals the reference exactly, where the answer is the first match of
"The answer is (-?[0-9.,]+)." (one more character of any kind but a line break must follow), else
of "#### (-?[0-9.,]+)", else the last "-?[0-9]+" of the text, else "".

`gsm8k_reward` (reward set "dlrl", this project's earlier rule; `correctness_only` gives 1/0):
  correctness 2.0 if answer == the reference answer (both stripped, and commas dropped from numbers);
  integer     0.5 if answer is made of ASCII digits only;
  strict      0.5 if the whole text is "<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>\\n";
  soft        0.5 if the text starts with "<reasoning>...</reasoning>", blanks, "<answer>...</answer>";
  xml count   0.125 for each of "<reasoning>\\n", "\\n</reasoning>\\n", "\\n<answer>\\n", "\\n</answer>" that
              occurs exactly once, minus 0.001 per character after the closing tag (both the
              "\\n</answer>\\n" and the "\\n</answer>" forms, as in d1; shared by every set).
Its format patterns match across lines (DOTALL), so multi-line reasoning counts.
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


_OFFICIAL_STRICT = re.compile(r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$")
_OFFICIAL_SOFT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>")
_ESPO_PATTERNS = (re.compile(r"The answer is (\-?[0-9\.,]+)."), re.compile(r"#### (\-?[0-9\.,]+)"))
_ESPO_NUMBER = re.compile(r"(\-?[0-9]+)")


def official_gsm8k_terms(completion: str, example: dict) -> dict[str, float]:
    """The five d1 terms by name (their sum is the reward)."""
    answer = extract_answer(completion)
    return {"correctness": 2.0 if answer == str(example["answer"]) else 0.0,
            "integer": 0.5 if answer.isdigit() else 0.0,
            "strict_format": 0.5 if _OFFICIAL_STRICT.match(completion) else 0.0,
            "soft_format": 0.5 if _OFFICIAL_SOFT.match(completion) else 0.0,
            "xml_count": xml_count(completion)}


def official_gsm8k_reward(completion: str, example: dict) -> float:
    return sum(official_gsm8k_terms(completion, example).values())


def espo_extract_answer(text: str) -> str:
    for pattern in _ESPO_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(1).strip()
    numbers = _ESPO_NUMBER.findall(text)
    return numbers[-1].strip() if numbers else ""


def espo_gsm8k_reward(completion: str, example: dict) -> float:
    return 1.0 if espo_extract_answer(completion) == str(example["answer"]) else 0.0


def validate_example(example: dict, index: int) -> None:
    if not isinstance(example.get("answer"), (str, int, float)) or isinstance(example.get("answer"), bool):
        raise ValueError(f"examples[{index}]['answer'] must be the reference answer (a string or number), "
                         f"got {example.get('answer')!r}")
