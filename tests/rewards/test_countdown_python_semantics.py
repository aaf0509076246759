"""`python_value` against CPython itself: the official Countdown reward evaluates the answer with
eval(expr, {"__builtins__": None}, {}) after checking its characters, so here eval (on short strings
drawn from that character set, in the test only) is the oracle for value, type and failure."""

import random
import warnings

import pytest

from dlrl_jax.rewards.countdown import python_value

PIECES = list("0123456789") + list("+-*/().") + [" ", "**", "//", "\n", "\t", "\f", "\r", "00", "1.", "07"]


def _eval(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'int' object is not callable" SyntaxWarnings
        try:
            value = eval(text, {"__builtins__": None}, {})
        except Exception:
            return "error", None
    return ("error", None) if isinstance(value, tuple) else ("ok", value)


def _ours(text):
    try:
        return "ok", python_value(text)
    except (ValueError, ArithmeticError, TypeError):
        return "error", None


def test_random_expressions_match_cpython():
    rng = random.Random(1234)
    checked = 0
    for _ in range(6000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 9))).strip()
        if not text or text.count("**") > 1:  # a tower of powers could run for hours under eval
            continue
        expected, got = _eval(text), _ours(text)
        if expected[0] == "ok" and isinstance(expected[1], int) and expected[1].bit_length() > 90_000:
            continue  # the one refusal by design (huge integer powers)
        assert got[0] == expected[0], text
        if got[0] == "ok":
            assert type(got[1]) is type(expected[1]) and (got[1] == expected[1] or got[1] != got[1]), text
        checked += 1
    assert checked > 4000


@pytest.mark.parametrize("text,value", [
    ("-2**2", -4), ("2**-1", 0.5), ("2 ** 3 ** 2", 512), ("2*-3**2", -18), ("2**-3**2", 2 ** -9),
    ("7 // 2 * 2", 6), ("00", 0), ("01.5", 1.5), (".5 + 1.", 1.5), ("(1 +\n2)", 3), ("--3", 3), ("+ 3", 3)])
def test_precedence_and_literals(text, value):
    assert python_value(text) == value


@pytest.mark.parametrize("text", ["01", "1 +\n2", "1\r+2", "1\v+2", "1..2", "(1)(2)", "()", "1 2", "(1+2",
                                  "1+2)", "2* *3", "1/0", "0**-1", "٣+1", "1\u00a0+2", "9**9**9"])
def test_what_cpython_refuses_is_refused(text):
    with pytest.raises((ValueError, ArithmeticError)):
        python_value(text)
