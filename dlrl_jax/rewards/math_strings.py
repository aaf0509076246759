"""MATH reward of reward set "d1": string-normalised equivalence of the last \\boxed{} answer, as d1's
diffu-grpo/math500_utils.py and reward_func.py compute it (the same files in EGSPO's egspo/).

  reward = 2.0 x [normalise(answer of the completion) == normalise(answer of the reference)]
         + 0.5 x format

The answer of a text (`boxed_answer`): when the text contains "\\boxed " (with a space), what follows
the last "\\boxed " up to the next "$"; otherwise the contents of the last "\\boxed{...}" (braces
counted from the backslash), or of the last "\\fbox{...}" with the "\\fbox{" kept; with neither, or
with an unclosed box, the whole text. So an unboxed "5" still equals a reference "5".
The normalisation (`normalise`) is the official `strip_string`, step by step; where it raises (an
"a/b" whose parts are not integers, two "\\text{ " units, a trailing "\\frac" or "\\sqrt") the
official code compares the raw strings, and so does `equivalent`.

The format term is the official `boxed_in_answer`: 1.0 if "<answer>" occurs, plus 1.0 if the
text between the first "<answer>" and the next "</answer>" (the whole completion without tags)
contains "\\x08oxed", else 0.5. The official test is written `"\\boxed" in r` in a plain (not raw)
string, where "\\b" is the backspace character: it looks for backspace + "oxed", which model text
never holds, so the term is 0.5 for a \\boxed{} answer just as for none. Reproduced as computed:
format = 0.25 without <answer>, 0.75 with it (1.0 / 0.5 only with a backspace in the text).
"""

from __future__ import annotations

_BOX = "\\boxed"


def last_boxed(text: str) -> str | None:
    """The official last_boxed_only_string: "\\boxed " + what follows the last "\\boxed " up to the
    next "$" when that spaced form occurs; else the last "\\boxed..." (or, with no \\boxed, the last
    "\\fbox...") up to the brace that closes it (braces counted from the backslash), markers kept;
    the whole text when there is neither; None when the box never closes."""
    if _BOX + " " in text:  # this branch wins even when a later \boxed{...} exists
        return _BOX + " " + text.split(_BOX + " ")[-1].split("$")[0]
    start = text.rfind(_BOX)
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return text
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return None


def unbox(box: str) -> str:
    """d1's remove_boxed: the contents of "\\boxed{...}" or what follows "\\boxed "; anything else
    (an "\\fbox{...}", a whole unboxed text) unchanged."""
    if box.startswith(_BOX + " "):
        return box[len(_BOX) + 1:]
    return box[len(_BOX) + 1:-1] if box.startswith(_BOX + "{") and box.endswith("}") else box


def boxed_answer(text: str) -> str:
    """What d1 grades: remove_boxed(last_boxed_only_string(text)), or `text` where that raises."""
    box = last_boxed(text)
    return text if box is None else unbox(box)  # unclosed: remove_boxed(None) raises, the caller keeps the text


def _fix_fracs(s: str) -> str:
    """\\frac12 -> \\frac{1}{2}, \\frac1{2} -> \\frac{1}{2}; IndexError on an empty tail, as official."""
    head, *tails = s.split("\\frac")
    out = head
    for tail in tails:
        out += "\\frac"
        if tail[0] == "{":
            out += tail
        elif len(tail) < 2:
            return s
        elif tail[1] != "{":
            out += "{" + tail[0] + "}{" + tail[1] + "}" + tail[2:]
        else:
            out += "{" + tail[0] + "}" + tail[1:]
    return out


def _fix_a_slash_b(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    a, b = int(parts[0]), int(parts[1])  # ValueError propagates, as in the official code
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def _remove_right_units(s: str) -> str:
    if "\\text{ " not in s:
        return s
    parts = s.split("\\text{ ")
    if len(parts) != 2:
        raise ValueError("more than one unit")  # the official assertion
    return parts[0]


def _fix_sqrt(s: str) -> str:
    head, *tails = s.split("\\sqrt")
    out = head
    for tail in tails:
        out += "\\sqrt" + (tail if tail[0] == "{" else "{" + tail[0] + "}" + tail[1:])
    return out


_REMOVED_FIRST = ("\n", "\\!")
_REPLACED = (("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""), ("\\right", ""),
             ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""))


def normalise(s: str) -> str:
    """The official strip_string; raises where it raises."""
    for old in _REMOVED_FIRST:
        s = s.replace(old, "")
    for old, new in _REPLACED:
        s = s.replace(old, new)
    s = _remove_right_units(s)
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 5" -> " 5"
        s = sides[1]
    if "\\sqrt" in s:
        s = _fix_sqrt(s)
    s = _fix_fracs(s.replace(" ", ""))
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def equivalent(candidate: str, reference: str) -> bool:
    """The official is_equiv on two strings."""
    try:
        return normalise(candidate) == normalise(reference)
    except Exception:  # the official falls back to comparing the raw strings on any error
        return candidate == reference


def format_score(completion: str) -> float:
    """The official boxed_in_answer (before its 0.5 weight); see the module docstring for "\\x08oxed"."""
    tagged = "<answer>" in completion
    inside = completion.split("<answer>")[1].split("</answer>")[0] if tagged else completion
    return (1.0 if tagged else 0.0) + (1.0 if "\x08oxed" in inside else 0.5)


def reference_text(example: dict) -> str:
    """The text the official code grades against: the worked solution (it stores MATH's `solution`
    as the answer and takes its last box); a record's bare `answer` gives the same result."""
    solution = example.get("solution")
    return solution if isinstance(solution, str) and _BOX in solution else str(example["answer"])


def d1_math_correct(completion: str, example: dict) -> bool:
    return equivalent(boxed_answer(completion), boxed_answer(reference_text(example)))


def d1_math_reward(completion: str, example: dict) -> float:
    return (2.0 if d1_math_correct(completion, example) else 0.0) + 0.5 * format_score(completion)
