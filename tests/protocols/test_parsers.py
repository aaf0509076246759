"""The papers' accuracy parsers against tables worked out by hand from the official source:
d1 eval/parse_and_get_acc.py + parser_helper.py (EGSPO's eval/ holds the same functions byte for
byte, so every d1 table runs under "egspo" too), ESPO eval/parse_and_get_acc.py + parse_utils.py.
Each comment says which line of the official code decides the case."""

import pytest

from dlrl_jax.protocols import ProtocolError, check, record_from_d1_entry, score

D1_LIKE = ("d1", "egspo")
EOT = "<|eot_id|><|endoftext|><|endoftext|>"

# ---------------------------------------------------------------- GSM8K: (text, record answer, correct)
GSM8K = [
    ("<reasoning>\n9 x 2 = 18\n</reasoning>\n<answer>\n\\boxed{18}\n</answer>" + EOT, "18", 1),
    # the FIRST box that parses wins: 17 is read, the later 18 never
    ("\\boxed{17} no wait \\boxed{18}", "18", 0),
    # a box that neither is a float nor holds a number is passed over
    ("\\boxed{x} so \\boxed{18}", "18", 1),
    # not a float: its first number, "18.00"
    ("\\boxed{\\$18.00}", "18", 1),
    # "1,000" is not a float; its first number is "1"
    ("\\boxed{1,000}", "1000", 0),
    # "..." (and any run of dots) is skipped; with no other box, the <answer> is read
    ("\\boxed{...} <answer>18</answer>", "18", 1),
    # the lazy `{(.*?)}` stops at the first "}": "\\frac{36" -> its first number 36
    ("\\boxed{\\frac{36}{2}}", "18", 0),
    # <answer> that is not a float: its LAST number
    ("<answer>3 + 15 = 18</answer>", "18", 1),
    # `.` does not cross a line break: no box is found, the <answer> decides
    ("\\boxed{1\n8} <answer>18</answer>", "18", 1),
    ("The answer is 18.", "18", 0),  # neither a box nor tags: None
    ("<answer>   </answer>", "18", 0),  # blank tags: None
    ("<answer>18.5</answer>", "18.5", 1),
    ("\\boxed{18.0}", "18", 1),  # floats compared: 18.0 == 18.0
    ("\\boxed{1000}", "1,000", 1),  # the reference "1,000" read as d1's gsm8k.py reads "#### 1,000"
    # d1's reference pattern `####\s*\$?([\d,]+...)` finds no negative number: None, never equal
    ("\\boxed{-3}", "-3", 0),
]


@pytest.mark.parametrize("protocol", D1_LIKE)
@pytest.mark.parametrize("text,answer,correct", GSM8K)
def test_gsm8k_official(protocol, text, answer, correct):
    assert score(protocol, "gsm8k", text, {"question": "q", "answer": answer}) == (correct, 1)


def test_gsm8k_float_reference_of_a_d1_file():
    entry = {"question": "q", "generations": "\\boxed{18}", "ground_truth": 18.0}
    assert record_from_d1_entry("gsm8k", entry)["answer"] == "18"
    assert score("d1", "gsm8k", entry["generations"], record_from_d1_entry("gsm8k", entry)) == (1, 1)
    none = {"question": "q", "generations": "\\boxed{-3}", "ground_truth": None}  # as d1 saves a negative answer
    assert score("d1", "gsm8k", none["generations"], record_from_d1_entry("gsm8k", none)) == (0, 1)


# ---------------------------------------------------------------- MATH: (text, reference, correct)
MATH = [
    ("<answer>\n\\boxed{\\frac{1}{2}}\n</answer>" + EOT, "\\frac{1}{2}", 1),
    ("\\boxed{3} then \\boxed{4}", "4", 1),  # the LAST box
    ("\\boxed{3} then \\boxed{4}", "3", 0),
    # no box at all: last_boxed_only_string returns the whole text and remove_boxed keeps it, so the
    # <answer> fallback is never reached: "<answer>5</answer>" is compared with "5"
    ("<answer>5</answer>", "5", 0),
    # an unclosed box: last_boxed_only_string gives None, remove_boxed(None) raises -> <answer>
    ("\\boxed{5 <answer>5</answer>", "5", 1),
    ("\\boxed{}<answer>7</answer>", "7", 1),  # an empty box is falsy -> <answer>
    ("\\boxed{0.5}", "\\frac{1}{2}", 1),  # strip_string: "0.5" -> \frac{1}{2}
    ("\\boxed{\\dfrac{1}{2}}", "\\frac12", 1),  # dfrac -> frac; fix_fracs: \frac12 -> \frac{1}{2}
    ("\\boxed{x = 5}", "5", 1),  # a left side of at most 2 characters is dropped
    ("so \\boxed 5$.", "5", 1),  # the spaced form: up to the next "$"
    # "a/b": fix_a_slash_b's int("a") raises ValueError, is_equiv compares the raw strings
    ("\\boxed{a/b}", "a/b", 1),
    ("\\boxed{a/b}", "\\frac{a}{b}", 0),
    ("\\fbox{5}", "5", 0),  # "\\fbox{5}" is kept whole by remove_boxed
    ("\\boxed{10\\%}", "10", 1),
    ("\\boxed{90^\\circ}", "90", 1),
]


@pytest.mark.parametrize("protocol", D1_LIKE)
@pytest.mark.parametrize("text,reference,correct", MATH)
def test_math_official(protocol, text, reference, correct):
    assert score(protocol, "math", text, {"question": "q", "answer": reference}) == (correct, 1)


# ---------------------------------------------------------------- Countdown: (text, numbers, target, d1, espo)
N = [49, 55, 53]
COUNTDOWN = [
    ("<answer>\n\\boxed{55 - 53}\n</answer>" + EOT, N, 51, 0, 0),  # 49 unused
    ("\\boxed{49 + 55 - 53}", N, 51, 1, 1),
    ("\\boxed{(55 - 53) \\times 49}", N, 98, 1, 1),  # \times -> *
    ("\\boxed{100 \\div 4 - 2}", [100, 4, 2], 23, 1, 1),  # \div -> /
    ("\\boxed{3 \\cdot 4 + 5}", [3, 4, 5], 17, 1, 1),  # \cdot -> *
    ("\\boxed{49 + 55 - 53 = 51}", N, 51, 1, 1),  # the part before "="
    # no box: d1 reads the whole text, and the "=" pattern cuts "49 + 55 - 53" out of it
    ("So 49 + 55 - 53 = 51.", N, 51, 1, 1),
    # no box, tags: d1 checks the whole text (its "<" fails the character check); ESPO's remove_boxed
    # raises on an unboxed text and it reads the <answer>
    ("<answer>49 + 55 - 53</answer>", N, 51, 0, 1),
    ("\\boxed{49 + 55 - 53 <answer>49 + 55 - 53</answer>", N, 51, 1, 1),  # unclosed box: <answer>, both
    # an \fbox: d1 keeps "\fbox{...}" (letters fail); ESPO raises and reads the <answer>
    ("\\fbox{49 + 55 - 53} <answer>49+55-53</answer>", N, 51, 0, 1),
    ("\\boxed{53 + 53 - 55}", N, 51, 0, 0),  # 53 twice, 49 missing
    ("\\boxed{2 ** 3 + 5}", [2, 3, 5], 13, 1, 1),  # eval: ** is a power
    ("\\boxed{(49 - 1) / 3}", [49, 1, 3], 16, 1, 1),  # 16.0
    ("\\boxed{5 / (3 - 3)}", [5, 3, 3], 1, 0, 0),  # ZeroDivisionError -> inf
    # "x = ...": the "=" pattern matches " =" + " 49": the expression is "" (no numbers)
    ("\\boxed{x = 49 + 55 - 53}", N, 51, 0, 0),
    ("\\boxed{51}", N, 51, 0, 0),
    ("\\boxed{49 + 55 - 053}", N, 51, 0, 0),  # eval: leading zeros are a SyntaxError -> inf
    ("no answer at all", N, 51, 0, 0),
]


@pytest.mark.parametrize("text,numbers,target,d1,espo", COUNTDOWN)
def test_countdown_official(text, numbers, target, d1, espo):
    record = {"numbers": numbers, "target": target}
    for protocol in D1_LIKE:
        assert score(protocol, "countdown", text, record) == (d1, 1)
    assert score("espo", "countdown", text, record) == (espo, 1)


# ---------------------------------------------------------------- Sudoku: (text, correct blank cells)
PUZZLE, SOLUTION = "4320004330100004", "4321124334122134"  # blanks at 3 4 5 9 11 12 13 14
SUDOKU = [
    ("<answer>\n4321124334122134\n</answer>" + EOT, 8),
    ("<answer>\n4320004330100004\n</answer>" + EOT, 0),  # the puzzle copied: every blank still 0
    # pattern 1: a code fence inside the answer, whitespace removed
    ("<answer>```\n4321 1243\n3412 2134\n```</answer>", 8),
    # pattern 2 captures "" (blank: passed over); pattern 3 reads after </answer> up to <|eot_id|>
    ("<answer></answer>\n4321124334122134<|eot_id|>", 8),
    ("<answer>4321</answer>", 1),  # padded with 0: only blank 3 (a 1) is filled
    ("<answer>43211243341221349999</answer>", 8),  # cut to 16
    ("<answer>\n4 3 2 1\n1 2 4 3\n3 4 1 2\n2 1 3 4\n</answer>", 8),
    # not digits only: "[432112433412213" shifts every cell by one: blanks 4 and 12 match by chance
    ("<answer>[4321124334122134]</answer>", 2),
    ("The solution is 4321124334122134.", 8),  # pattern 5: 16 digits between word boundaries
    # pattern 3 captures "" before <|eot_id|>; pattern 4: 16 digits right before </answer>
    ("4321124334122134</answer><|eot_id|>", 8),
    # special tokens kept: pattern 2 stops at <|eot_id|> and reads "43211243" (blanks 3 4 5 right)
    ("<answer>\n43211243<|eot_id|><|endoftext|>", 3),
    ("<answer>\n43211243", 0),  # the same text with the special tokens dropped: no pattern matches
    # blank answer, pattern 3 blank, pattern 4 finds no digits before </answer>: pattern 5 in the reasoning
    ("I think 4321124334122134 works.\n<answer>\n</answer><|eot_id|>", 8),
    # words in the answer are kept: "Thegridis4321124" -> blanks 9, 11, 13 match
    ("<answer>\nThe grid is 4321124334122134\n</answer>", 3),
    ("no grid here", 0),
]


@pytest.mark.parametrize("protocol", ("d1", "egspo", "espo"))
@pytest.mark.parametrize("text,correct", SUDOKU)
def test_sudoku_official(protocol, text, correct):
    assert score(protocol, "sudoku", text, {"puzzle": PUZZLE, "solution": SOLUTION}) == (correct, 8)


def test_sudoku_record_from_a_d1_question():
    entry = {"question": f"Solve the following Sudoku puzzle: {PUZZLE}\n", "generations": "",
             "ground_truth": SOLUTION}
    assert record_from_d1_entry("sudoku", entry) == {"puzzle": PUZZLE, "solution": SOLUTION}
    bare = {"question": PUZZLE + "\n", "generations": "", "ground_truth": SOLUTION}  # the first 16 characters
    assert record_from_d1_entry("sudoku", bare)["puzzle"] == PUZZLE


def test_countdown_record_from_a_d1_entry():
    assert record_from_d1_entry("countdown", {"question": "", "ground_truth": [[1, 2, 3], 6]}) == \
        {"numbers": [1, 2, 3], "target": 6}
    # without [numbers, target], the official parser reads the question
    assert record_from_d1_entry("countdown", {"question": "Numbers: [4, 5, 6]\nTarget: 15",
                                              "ground_truth": None}) == {"numbers": [4, 5, 6], "target": 15}


# ---------------------------------------------------------------- dlrl: this project's own accuracy
@pytest.mark.parametrize("task,text,record,expected", [
    ("gsm8k", "<reasoning>\nx\n</reasoning>\n<answer>\n18\n</answer>", {"question": "q", "answer": "18"}, (1, 1)),
    # the answer is the tag's text, not a box: a boxed answer scores 0 here and 1 under d1
    ("gsm8k", "<answer>\\boxed{18}</answer>", {"question": "q", "answer": "18"}, (0, 1)),
    ("countdown", "<answer>49 + 55 - 53 = 51</answer>", {"numbers": N, "target": 51}, (1, 1)),  # "= target" dropped
    ("countdown", "<answer>49 + 55 + 53</answer>", {"numbers": N, "target": 51}, (0, 1)),
    ("sudoku", "4321124334122134", {"puzzle": PUZZLE, "solution": SOLUTION}, (8, 8)),  # no tags: the whole text
    ("sudoku", "<answer>4321</answer>", {"puzzle": PUZZLE, "solution": SOLUTION}, (1, 8)),
    ("math", "<answer>\\boxed{\\frac{1}{2}}</answer>", {"question": "q", "answer": "0.5"}, (1, 1)),  # math-verify
])
def test_dlrl_protocol(task, text, record, expected):
    assert score("dlrl", task, text, record) == expected


def test_unsupported_pairs_name_what_is_supported():
    with pytest.raises(ProtocolError, match=r"protocol 'espo' has no gsm8k parser .*OpenCompass.*it scores "
                                            r"countdown, sudoku; for gsm8k use --protocol d1 or egspo or dlrl"):
        check("espo", "gsm8k")
    with pytest.raises(ProtocolError, match="protocol 'd1' has no code parser"):
        check("d1", "code")
    with pytest.raises(ProtocolError, match="protocol 'opencompass' is unknown; use one of d1, egspo, espo, dlrl"):
        check("opencompass", "gsm8k")
    with pytest.raises(ProtocolError, match="task 'chess' is unknown"):
        check("d1", "chess")


@pytest.mark.parametrize("task,record,message", [
    ("sudoku", {"puzzle": "123", "solution": SOLUTION}, r"record\['puzzle'\] must be 16 digits"),
    ("countdown", {"numbers": [1, 2], "target": "x"}, r"record\['target'\] must be the target number"),
    ("countdown", {"target": 3}, r"the record has no 'numbers'"),
    ("math", {"question": "q"}, r"the record has no 'answer'"),
])
def test_bad_records_name_the_field(task, record, message):
    with pytest.raises(ProtocolError, match=message):
        score("d1", task, "text", record)
