"""Each paper's prompt text, as its official code builds the chat messages (experimental settings,
kept here as data with their source files). The model's chat template is applied afterwards by
the tokenizer, exactly as the official code's `apply_chat_template` does.

A recipe entry is (source, system message or None, user template). Templates are `str.format`
strings: `{SYSTEM_PROMPT}`, `{SUDOKU_SYSTEM_PROMPT}` and `{ESPO_SUDOKU_SYSTEM_PROMPT}` stand for the
constants below, and the record's fields fill `{question}`, `{numbers}` (the Python list, printed
as the official f-string prints it: "[2, 3, 4]"), `{target}`, `{puzzle}` (the 16-character string)
and `{test_hint}` (ESPO code). Literal braces are doubled: "\\\\boxed{{}}" renders "\\boxed{}".

Recipes: "d1" (dllm-reasoning/d1), "egspo" (vishnutez/egspo-dllm-rl: d1's text, plus code), "espo"
(ML-GSAI/ESPO). The project's own prompts ("dlrl") are in `dlrl_jax.tasks.prompts`; each task's
`TaskSpec.recipe_fields` fills the templates.
"""

from __future__ import annotations

from dlrl_jax.tasks.spec import get

# d1 diffu-grpo/data_utils.py SYSTEM_PROMPT (= EGSPO egspo/data_utils.py SYSTEM_PROMPT = ESPO
# espo/data_utils.py REASONING_SYSTEM_PROMPT).
SYSTEM_PROMPT = """
Respond in the following format:
<reasoning>
...
</reasoning>
<answer>
...
</answer>
"""

# d1 diffu-grpo/data_utils.py SUDOKU_SYSTEM_PROMPT (= EGSPO egspo/data_utils.py).
SUDOKU_SYSTEM_PROMPT = """
Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading left-to-right, top-to-bottom, where '0' represents empty cells.

Rules:
- Fill empty cells with digits 1-4
- Each row must contain digits 1-4 exactly once
- Each column must contain digits 1-4 exactly once
- Each 2x2 box must contain digits 1-4 exactly once

Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.

Respond in this exact format:
<reasoning>
Your step-by-step solving process
</reasoning>
<answer>
[16-character solution string with no spaces or separators]
</answer>
"""

# ESPO espo/data_utils.py SUDOKU_SYSTEM_PROMPT (with its worked example).
ESPO_SUDOKU_SYSTEM_PROMPT = """
Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading left-to-right, top-to-bottom, where '0' represents empty cells.

**Rules:**
- Fill empty cells with digits 1-4.
- Each row must contain digits 1-4 exactly once.
- Each column must contain digits 1-4 exactly once.
- Each 2x2 box must contain digits 1-4 exactly once.

**Example:**
Puzzle: 0401002010030310
This puzzle grid looks like this:
0 4 | 0 1
0 0 | 2 0
----+----
1 0 | 0 3
0 3 | 1 0

Solution: 2431312412434312
The solved grid looks like this:
2 4 | 3 1
3 1 | 2 4
----+----
1 2 | 4 3
4 3 | 1 2

**Important:** Your solution must be a COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.

Respond in this exact format:
<reasoning>
Your step-by-step solving process
</reasoning>
<answer>
[16-character solution string with no spaces or separators]
</answer>
"""

# ESPO espo/data_utils.py make_conversation: the system message of code prompts.
ESPO_CODE_SYSTEM = ("You are a helpful assistant. When you output code, it must be in a single fenced code block "
                    "using triple backticks (```) and the language specifier (e.g., ```python). The code block must "
                    "appear as the last part of your response and end with a newline after the closing backticks "
                    "(```). Do not include any text after the code block. Do not include extra code blocks or "
                    "explanations outside the final code block.")

_D1 = "dllm-reasoning/d1 diffu-grpo/data_utils.py"
_EGSPO = "vishnutez/egspo-dllm-rl egspo/data_utils.py"
_ESPO = "ML-GSAI/ESPO espo/data_utils.py"

_COUNTDOWN = ("{SYSTEM_PROMPT}\nUsing only the numbers {numbers}, create an arithmetic expression that evaluates to "
              "exactly {target}. You must use all numbers from the list, and each number must be used exactly once. "
              "You may use the operations +, -, *, and / as needed. After reasoning, provide only your final "
              "expression inside <answer></answer> tags without including an equals sign or the target number. "
              "For example, if the numbers are [2, 3, 4] and the target is 5, a valid answer is: "
              "<answer>\n2*4-3\n</answer>")
_D1_TASKS = {
    "gsm8k": (f"{_D1} get_gsm8k_questions", None, "{SYSTEM_PROMPT}\n\n{question}"),
    "countdown": (f"{_D1} get_countdown_questions", None, _COUNTDOWN),
    "sudoku": (f"{_D1} get_sudoku_questions", None,
               "{SUDOKU_SYSTEM_PROMPT}\n\nSolve the following Sudoku puzzle: {puzzle}\n"),
    "math": (f"{_D1} get_math_questions", None,
             "{SYSTEM_PROMPT}\n\nYou are a math expert. You will be given a question to solve. Solve it step by "
             "step. Wrap the final answer in a \\boxed{{}}. \n\n{question}"),
}
RECIPES: dict[str, dict[str, tuple[str, str | None, str]]] = {
    "d1": _D1_TASKS,
    "egspo": {**{task: (src.replace(_D1, _EGSPO), system, user) for task, (src, system, user) in _D1_TASKS.items()},
              "code": (f"{_EGSPO} get_code_questions", None,
                       "{SYSTEM_PROMPT}\n\nYou are a coding expert. You will be given a coding problem to solve. "
                       "Solve it step by step. \n\n{question}")},
    "espo": {
        "gsm8k": (f"{_ESPO} get_gsm8k_questions", None,
                  "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."),
        "math": (f"{_ESPO} get_math_questions", None,
                 "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."),
        "countdown": (f"{_ESPO} get_countdown_questions", None, _COUNTDOWN),
        "sudoku": (f"{_ESPO} get_sudoku_questions", None,
                   "{ESPO_SUDOKU_SYSTEM_PROMPT}\n\nNow, solve the following Sudoku puzzle: {puzzle}\n"),
        # the first test case is shown unless the question already holds a fenced block (AceCode's
        # rewritten "Please complete the following problem" questions)
        "code": (f"{_ESPO} make_conversation", ESPO_CODE_SYSTEM, "{question}{test_hint}"),
    },
}
_CONSTANTS = {"SYSTEM_PROMPT": SYSTEM_PROMPT, "SUDOKU_SYSTEM_PROMPT": SUDOKU_SYSTEM_PROMPT,
              "ESPO_SUDOKU_SYSTEM_PROMPT": ESPO_SUDOKU_SYSTEM_PROMPT}


def check_recipe(recipe: str, task: str) -> None:
    if recipe not in RECIPES:
        raise ValueError(f"unknown prompt recipe {recipe!r}; known: dlrl, {', '.join(RECIPES)}")
    if task not in RECIPES[recipe]:
        has = [r for r in RECIPES if task in RECIPES[r]]
        raise ValueError(f"prompt recipe {recipe!r} has no {task} prompt (its code trains no {task}); "
                         f"recipes with one: dlrl, {', '.join(has)}")


def messages(recipe: str, task: str, record: dict) -> tuple[str | None, str]:
    """(system message or None, user message) for `record` under `recipe`."""
    check_recipe(recipe, task)
    _, system, user = RECIPES[recipe][task]
    return system, user.format(**_CONSTANTS, **get(task).recipe_fields(record))


def source(recipe: str, task: str) -> str:
    """The official file and function the recipe's text comes from."""
    check_recipe(recipe, task)
    return RECIPES[recipe][task][0]
