"""Countdown reward (d1's rule): 1.0 if the last <answer> equation uses exactly the given numbers,
each once, and evaluates within 1e-5 of the target; 0.1 if an answer is there but wrong (wrong
value, wrong numbers, characters outside digits, + - * / ( ) . and spaces, division by zero, or
unparsable); 0.0 with no <answer>...</answer>. An "= target" tail is dropped before checking.

Arithmetic goes through a small recursive-descent parser over Fractions, never Python's eval.
"""

from __future__ import annotations

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
