"""Countdown rewards: 1.0 for a right equation, 0.1 for an answer that is there but wrong, 0.0 for none.

`official_countdown_reward` (reward sets "d1" and "espo") computes what d1's `compute_score`
(dllm-reasoning/d1 diffu-grpo/reward_func.py; the same in EGSPO's egspo/reward_func.py and ESPO's
espo/rewards.py) computes: the whole text of the last <answer>...</answer> (DOTALL), stripped; its
runs of digits (`\\d+`, Unicode digits included, as int) must be the given numbers as a multiset;
the text must consist of digits, + - * / ( ) . and whitespace only; and its value *as a Python
expression* must lie within 1e-5 of the target. So "3 * 5 + 7 = 22" scores 0.1 (the 22 is an extra
number and "=" is not allowed), "2**3" is a power and "+3" a unary plus, as in Python.
The official code calls Python's eval; `python_value` is an evaluator of that same expression
grammar and numeric semantics (int / float arithmetic, `//`, `**`, unary + and -, Python's literal
rules), never eval. Its one deliberate difference: a power whose integer result would exceed
100,000 bits is refused (0.1) where eval would run for hours or exhaust memory.

`countdown_reward` (reward set "dlrl", this project's earlier rule) drops an "= target" tail,
counts only ASCII integers, has no `**` and evaluates exactly over Fractions.
"""

from __future__ import annotations

import operator
import re
from fractions import Fraction

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ALLOWED = re.compile(r"^[0-9+\-*/().\s]+$")
_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|[+\-*/()])")
_MAX_LENGTH = 200  # a longer "equation" is not an answer to a 3-4 number puzzle


class _ParseError(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise _ParseError(text[pos:])
        out.append(m.group(1))
        pos = m.end()
    return out


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """(value, the integers used in order) of an arithmetic expression; raises ValueError if invalid."""
    tokens = _tokens(expression)
    numbers: list[int] = []
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr():
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take() == "+" else value - term()
        return value

    def term():
        value = factor()
        while peek() in ("*", "/"):
            op, rhs = take(), factor()
            if op == "/" and rhs == 0:
                raise ZeroDivisionError
            value = value * rhs if op == "*" else value / rhs
        return value

    def factor():
        tok = peek()
        if tok == "-":
            take()
            return -factor()
        if tok == "(":
            take()
            value = expr()
            if peek() != ")":
                raise _ParseError("unbalanced parentheses")
            take()
            return value
        if tok is None or not tok[0].isdigit():
            raise _ParseError(f"expected a number at {tok!r}")
        take()
        if "." in tok:
            numbers.append(None)  # a decimal is never one of the given integers
            return Fraction(tok)
        numbers.append(int(tok))
        return Fraction(int(tok))

    value = expr()
    if pos != len(tokens):
        raise _ParseError("trailing input")
    return value, numbers


def countdown_reward(completion: str, example: dict) -> float:
    matches = _ANSWER.findall(completion)
    if not matches:
        return 0.0
    equation = matches[-1].split("=")[0].strip()
    if not equation or len(equation) > _MAX_LENGTH or not _ALLOWED.match(equation):
        return 0.1
    try:
        value, used = evaluate(equation)
    except (ValueError, ZeroDivisionError):
        return 0.1
    if None in used or sorted(used) != sorted(example["numbers"]):
        return 0.1
    return 1.0 if abs(float(value) - example["target"]) < 1e-5 else 0.1


def validate_example(example: dict, index: int) -> None:
    numbers, target = example.get("numbers"), example.get("target")
    if not isinstance(numbers, list) or not numbers or not all(isinstance(x, int) for x in numbers):
        raise ValueError(f"examples[{index}]['numbers'] must be a non-empty list of integers, got {numbers!r}")
    if not isinstance(target, (int, float)) or isinstance(target, bool):
        raise ValueError(f"examples[{index}]['target'] must be a number, got {target!r}")


# What the official code checks: its character pattern (Unicode \d and \s, re.match with $) and
# its number runs.
_OFFICIAL_CHARS = re.compile(r"^[\d+\-*/().\s]+$")
_DIGIT_RUNS = re.compile(r"\d+")
# Python's tokens for that character set (ASCII only: a non-ASCII digit or space is a SyntaxError).
_PY_TOKEN = re.compile(r"(\d+\.\d*|\.\d+|\d+)|(\*\*|//|[-+*/()])|([ \t\f]+)|(\r\n|\r|\n)", re.ASCII)
_MAX_NESTING = 200         # CPython: "too many nested parentheses" beyond 200 open brackets
_MAX_POW_BITS = 100_000
_BINARY = {"+": (1, operator.add), "-": (1, operator.sub), "*": (2, operator.mul), "/": (2, operator.truediv),
           "//": (2, operator.floordiv), "**": (4, None)}
_UNARY_PRECEDENCE = 3      # binds tighter than * / //, looser than ** on its right: -2**2 == -4


def _power(base, exponent):
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and \
            exponent * max(abs(base).bit_length() - 1, 0) > _MAX_POW_BITS:
        raise OverflowError("integer power too large to evaluate")
    return base ** exponent


def _python_tokens(text: str) -> list[str]:
    """Tokens of `text` as Python's tokenizer would see them; ValueError where Python raises SyntaxError."""
    out, pos, depth = [], 0, 0
    while pos < len(text):
        m = _PY_TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"not a Python token at {text[pos:pos + 10]!r}")
        number, op, _, newline = m.groups()
        pos = m.end()
        if newline is not None:
            if depth == 0:  # a line break outside brackets ends the expression
                raise ValueError("line break outside parentheses")
            continue
        if number is not None:
            if "." not in number and number[0] == "0" and number.strip("0"):
                raise ValueError("leading zeros in a decimal integer literal")
            out.append(number)
        elif op is not None:
            depth += op == "("
            depth -= op == ")"
            if depth > _MAX_NESTING:
                raise ValueError("too many nested parentheses")
            out.append(op)
    return out


def python_value(expression: str):
    """The value Python's eval gives `expression` (digits, + - * / // ** ( ) . and blanks), or
    ValueError / ArithmeticError where eval raises. Shunting-yard, so deep nesting needs no recursion."""
    values, ops = [], []  # ops: ("u", sign) for a unary sign, ("b", op) for a binary operator, "(" for a bracket

    def apply(op):
        if op[0] == "u":
            values.append(-values.pop() if op[1] == "-" else +values.pop())
            return
        rhs, lhs = values.pop(), values.pop()
        values.append(_power(lhs, rhs) if op[1] == "**" else _BINARY[op[1]][1](lhs, rhs))

    def precedence(op):
        return _UNARY_PRECEDENCE if op[0] == "u" else _BINARY[op[1]][0]

    expect_operand = True
    for tok in _python_tokens(expression):
        if expect_operand:
            if tok in ("+", "-"):
                ops.append(("u", tok))
            elif tok == "(":
                ops.append("(")
            elif tok[0].isdigit() or tok[0] == ".":
                values.append(float(tok) if "." in tok else int(tok))
                expect_operand = False
            else:
                raise ValueError(f"unexpected {tok!r}")
        elif tok == ")":
            while ops and ops[-1] != "(":
                apply(ops.pop())
            if not ops:
                raise ValueError("unmatched ')'")
            ops.pop()
        elif tok in _BINARY:
            prec = _BINARY[tok][0]
            while ops and ops[-1] != "(" and (precedence(ops[-1]) > prec or
                                              (precedence(ops[-1]) == prec and tok != "**")):
                apply(ops.pop())
            ops.append(("b", tok))
            expect_operand = True
        else:  # a number or bracket right after an operand: a syntax error or a call of a number
            raise ValueError(f"unexpected {tok!r}")
    if expect_operand or "(" in ops:
        raise ValueError("incomplete expression")
    while ops:
        apply(ops.pop())
    return values[0]


def official_countdown_reward(completion: str, example: dict) -> float:
    matches = _ANSWER.findall(completion)
    if not matches:
        return 0.0
    equation = matches[-1].strip()
    try:  # int() refuses a run of over 4300 digits; the official check then fails as well
        used = sorted(int(n) for n in _DIGIT_RUNS.findall(equation))
    except ValueError:
        return 0.1
    if used != sorted(example["numbers"]) or not _OFFICIAL_CHARS.match(equation):
        return 0.1
    try:
        value = python_value(equation)
        return 1.0 if abs(value - example["target"]) < 1e-5 else 0.1
    except (ValueError, ArithmeticError, TypeError):  # TypeError: e.g. `//` on a complex power
        return 0.1
