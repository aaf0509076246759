"""The papers' EVALUATION prompts, as their released eval code builds them (experimental settings,
kept here as data with their source files; the training prompts are in `dlrl_jax.tasks.recipe_prompts`).

Every official evaluation builds ONE user message (no system message: the chat template adds its own
default, if any), applies the chat template with the assistant header, and appends the prefill
"<reasoning>" after it (`add_reasoning=True`, "prefill for all models", eval/eval.py). The user
message is `SYSTEM + "\\n\\n" + question` for d1/EGSPO (eval/gsm8k.py `create_prompt`) and ESPO's
Sudoku; ESPO's Countdown writes its own content (eval/data_utils.py `CTDDataset.__getitem__`).

d1 and EGSPO share these files byte for byte (dllm-reasoning/d1 eval/{gsm8k,math500,countdown,
sudoku}.py = vishnutez/egspo-dllm-rl eval/ of the same names). Quirks kept: the GSM8K first line
ends in a space; the MATH prompt ends in `</answer>" ` and a newline; the Countdown prompt runs
"...\\boxed{a + b * c}" straight into "Respond in the following format:".
"""

from __future__ import annotations

from dlrl_jax.tasks import recipe_prompts

D1_EVAL = "dllm-reasoning/d1 eval/"  # = vishnutez/egspo-dllm-rl eval/ (identical files)
ESPO_EVAL = "ML-GSAI/ESPO eval/data_utils.py"

# d1 eval/gsm8k.py GSM_SYSTEM_PROMPT
GSM_SYSTEM_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final answer "
    "in a \\boxed{}. \nRespond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n"
    "<answer>\n\\boxed{...}\n</answer>")

# d1 eval/math500.py MATH500_SYSTEM_PROMPT (its stray `" ` after </answer> included)
MATH500_SYSTEM_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final answer "
    "in a \\boxed{}.\nRespond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n"
    "<answer>\n\\boxed{...}\n</answer>\" \n")

# d1 eval/countdown.py CTD_SYSTEM_PROMPT
CTD_SYSTEM_PROMPT = (
    "Using only the provided numbers, create an arithmetic expression that evaluates to exactly the provided "
    "target number. You may use the operations +, -, *, and / as needed, but each number must be used exactly "
    "once. Think step-by-step. After reasoning, provide only your final expression inside \\boxed{} tags without "
    "including an equals sign or the target number. For example: \\boxed{a + b * c}Respond in the following "
    "format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>")

# d1 eval/sudoku.py SUDOKU_SYSTEM_PROMPT: the same text as d1's training prompt
SUDOKU_SYSTEM_PROMPT = recipe_prompts.SUDOKU_SYSTEM_PROMPT

# ESPO eval/data_utils.py REASONING_SYSTEM_PROMPT: the same text as the training SYSTEM_PROMPT
ESPO_REASONING_SYSTEM_PROMPT = recipe_prompts.SYSTEM_PROMPT

# ESPO eval/data_utils.py CTDDataset.__getitem__ content (format fields: reasoning, numbers, target)
ESPO_COUNTDOWN_TEMPLATE = (
    "{reasoning}\nUsing only the numbers {numbers}, create an arithmetic expression that evaluates to exactly "
    "{target}. You must use all numbers from the list, and each number must be used exactly once. You may use the "
    "operations +, -, *, and / as needed. After reasoning, provide only your final expression inside "
    "<answer></answer> tags without including an equals sign or the target number. For example, if the numbers "
    "are [2, 3, 4] and the target is 5, a valid answer is: <answer>\n2*4-3\n</answer>")

# ESPO eval/data_utils.py SUDOKU_SYSTEM_PROMPT (with its worked example): the same text as ESPO's training one
ESPO_SUDOKU_SYSTEM_PROMPT = recipe_prompts.ESPO_SUDOKU_SYSTEM_PROMPT

# vishnutez/egspo-dllm-rl eval/human_eval.py HUMANEVAL_SYSTEM_PROMPT (its stray `" ` after </answer> included)
EGSPO_HUMANEVAL_SYSTEM_PROMPT = (
    "You are a coding expert. You will be given a coding problem to solve. Solve it step by step.\n\n"
    "Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n```python\n"
    "Your code here\n```\n</answer>\" \n")

# vishnutez/egspo-dllm-rl eval/mbpp.py MBPP_SYSTEM_PROMPT (four backticks closing its first line, and the
# same stray `" `)
EGSPO_MBPP_SYSTEM_PROMPT = (
    "You are a coding expert. You will be given a coding problem to solve. Solve it step by step. Ensure you wrap "
    "the answer in ```python````\n\nRespond in the following format:\n<reasoning>\nYour reasoning here\n"
    "</reasoning>\n<answer>\n```python\nYour code here\n```\n</answer>\" \n")

# vishnutez/egspo-dllm-rl eval/mbpp.py __getitem__: the problem, this line, then the assert lines
EGSPO_MBPP_TESTS_INTRO = "\n\n Your code should pass the following tests:\n\n"

# The assistant-side prefill every official evaluation appends after the chat template.
PREFILL = "<reasoning>"


def humaneval_docstring(prompt: str) -> str:
    """EGSPO's HumanEval question (eval/parsers.py `extract_human_eval_prompt`): the FIRST docstring of
    the prompt, each line stripped of its indentation, without the signature. Read line by line: the
    docstring opens on a line that starts (after indentation) with three quotes; a line holding both
    quotes and more than six characters is the whole docstring; else it runs up to the first line that
    ends with the same quotes. (Where a prompt defines a helper first, such as HumanEval/38 and /50,
    this is the helper's docstring: a quirk of the official code, kept.)"""
    lines, quote = [], None
    for line in prompt.splitlines():
        stripped = line.strip()
        if quote is None and stripped.startswith(('"""', "'''")):
            quote = stripped[:3]
            if stripped.count(quote) == 2 and len(stripped) > 6:
                return stripped[3:-3].strip()
            lines.append(stripped[3:])
        elif quote is not None:
            if stripped.endswith(quote):
                lines.append(stripped[:-3])
                break
            lines.append(stripped)
    return "\n".join(lines).strip()


def egspo_code_question(record: dict) -> str:
    """EGSPO's question of a HumanEval or MBPP record (eval/human_eval.py, mbpp.py __getitem__)."""
    if record.get("benchmark") == "humaneval":
        return humaneval_docstring(record["question"])
    if record.get("benchmark") == "mbpp":
        return record["question"] + EGSPO_MBPP_TESTS_INTRO + "\n".join(record["test_list"])
    raise ValueError("EGSPO's code evaluation reads HumanEval or MBPP records (task_id, prompt, test, entry_point "
                     "/ prompt, test_list, test_imports); this record is neither")


def egspo_code_message(task: str, record: dict) -> str:
    """d1's create_prompt with the benchmark's EGSPO system prompt."""
    system = EGSPO_HUMANEVAL_SYSTEM_PROMPT if record.get("benchmark") == "humaneval" else EGSPO_MBPP_SYSTEM_PROMPT
    return system + "\n\n" + egspo_code_question(record)


def question_text(task: str, record: dict) -> str:
    """The official `question` of a record (what the generation JSON stores and the parsers read):
    the problem text for GSM8K/MATH, "Numbers: [..]\\nTarget: N" for Countdown (an f-string of the
    Python list), "Solve the following Sudoku puzzle: <16 digits>\\n" for Sudoku (d1 eval/*.py
    __getitem__; ESPO eval/data_utils.py builds the same two); EGSPO's for a HumanEval or MBPP record."""
    if task == "code" and record.get("benchmark") in ("humaneval", "mbpp"):
        return egspo_code_question(record)
    if task == "countdown":
        return f"Numbers: {list(record['numbers'])}\nTarget: {record['target']}"
    if task == "sudoku":
        return f"Solve the following Sudoku puzzle: {record['puzzle']}\n"
    return record["question"]


def d1_user_message(system_prompt: str):
    """d1 eval/gsm8k.py create_prompt (zero-shot): system prompt, a blank line, the question."""
    return lambda task, record: system_prompt + "\n\n" + question_text(task, record)


def espo_countdown_message(task: str, record: dict) -> str:
    return ESPO_COUNTDOWN_TEMPLATE.format(reasoning=ESPO_REASONING_SYSTEM_PROMPT, numbers=list(record["numbers"]),
                                          target=record["target"])
