"""Prompt text per task, in the papers' format: the reply is asked for as <reasoning>...</reasoning>
followed by <answer>...</answer> (what the rewards of ../shared/ALGORITHMS.md §6 read), and the chat
template is applied by the tokenizer afterwards (`Tokenizer.encode_batch(chat=True)`).

`plain` prompts are the bare puzzle, for tiny models that answer with the solution alone.
These are the "dlrl" prompt recipe; the papers' own text ("d1", "egspo", "espo") is in
`dlrl_jax.data.recipe_prompts`.
"""

from __future__ import annotations

from dlrl_jax.data import recipe_prompts

PROMPT_RECIPES = ("dlrl",) + tuple(recipe_prompts.RECIPES)

FORMAT_INSTRUCTION = ("Answer in this format:\n<reasoning>\nyour step-by-step reasoning\n</reasoning>\n"
                      "<answer>\nyour final answer\n</answer>")


def _countdown(r: dict) -> str:
    numbers = ", ".join(str(x) for x in r["numbers"])
    return (f"With the numbers [{numbers}], write an arithmetic expression equal to {r['target']}. Use each "
            "number exactly once, and only + - * / and parentheses. Put just the expression in the answer, "
            "for example <answer>(1 + 2) * 3</answer>.")


def _sudoku(r: dict) -> str:
    grid = "\n".join(r["puzzle"][i:i + 4] for i in range(0, 16, 4))
    return ("Solve this 4x4 Sudoku. Every row, every column and each of the four 2x2 boxes must hold the "
            "digits 1 to 4 once. Empty cells are 0.\n" + grid + "\nGive the completed grid in the answer as "
            "16 digits, row by row.")


def _gsm8k(r: dict) -> str:
    return r["question"] + "\nGive the final number alone in the answer."


def _math(r: dict) -> str:
    return r["question"] + "\nPut the final answer in \\boxed{} inside the answer."


def _code(r: dict) -> str:
    text = r["question"]
    if r.get("tests_in_prompt", True) and r.get("tests"):
        text += "\nYour code must pass these tests:\n" + "\n".join(r["tests"][:3])
    return text + "\nGive the complete Python solution in a ```python code block inside the answer."


_QUESTIONS = {"countdown": _countdown, "sudoku": _sudoku, "gsm8k": _gsm8k, "math": _math, "code": _code}


def prompt_text(task: str, record: dict, style: str = "chat", recipe: str = "dlrl") -> str:
    """The user message for `record` (before the chat template). `plain`: the record's bare puzzle."""
    if recipe != "dlrl":
        if style != "chat":
            raise ValueError(f"prompt recipe {recipe!r} is a chat prompt; use prompt_style 'chat'")
        return recipe_prompts.messages(recipe, task, record)[1]
    if style == "plain":
        if task == "sudoku":
            return record["puzzle"]
        if task == "countdown":
            return " ".join(str(x) for x in record["numbers"]) + " = " + str(record["target"])
        raise ValueError(f"prompt_style 'plain' exists for sudoku and countdown only, not {task!r}; use 'chat'")
    if task not in _QUESTIONS:
        raise ValueError(f"no prompt for task {task!r}; known: {sorted(_QUESTIONS)}")
    return FORMAT_INSTRUCTION + "\n\n" + _QUESTIONS[task](record)


def system_text(task: str, recipe: str = "dlrl") -> str | None:
    """The system message of `recipe` for `task` (the same for every record), or None: then the chat
    template adds its own default, if any, as the official code's apply_chat_template does."""
    if recipe == "dlrl":
        return None
    recipe_prompts.check_recipe(recipe, task)
    return recipe_prompts.RECIPES[recipe][task][1]
