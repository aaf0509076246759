"""Prompt text per task, in the papers' format: the reply is asked for as <reasoning>...</reasoning>
followed by <answer>...</answer> (what the rewards of ../shared/ALGORITHMS.md §6 read), and the chat
template is applied by the tokenizer afterwards (`Tokenizer.encode_batch(chat=True)`).

`plain` prompts are the bare puzzle, for tiny models that answer with the solution alone.
These are the "dlrl" prompt recipe; the papers' own text ("d1", "egspo", "espo") is in
`dlrl_jax.tasks.recipe_prompts`. The per-task question and plain prompt are the task modules'
(`TaskSpec.question`, `TaskSpec.plain_prompt`).
"""

from __future__ import annotations

from dlrl_jax.tasks import recipe_prompts
from dlrl_jax.tasks.spec import get, names

PROMPT_RECIPES = ("dlrl",) + tuple(recipe_prompts.RECIPES)

FORMAT_INSTRUCTION = ("Answer in this format:\n<reasoning>\nyour step-by-step reasoning\n</reasoning>\n"
                      "<answer>\nyour final answer\n</answer>")


def prompt_text(task: str, record: dict, style: str = "chat", recipe: str = "dlrl") -> str:
    """The user message for `record` (before the chat template). `plain`: the record's bare puzzle."""
    if recipe != "dlrl":
        if style != "chat":
            raise ValueError(f"prompt recipe {recipe!r} is a chat prompt; use prompt_style 'chat'")
        return recipe_prompts.messages(recipe, task, record)[1]
    if task not in names():
        raise ValueError(f"no prompt for task {task!r}; known: {sorted(names())}")
    spec = get(task)
    if style == "plain":
        if spec.plain_prompt is None:
            plain = [n for n in names() if get(n).plain_prompt is not None]
            raise ValueError(f"prompt_style 'plain' exists for {' and '.join(plain)} only, not {task!r}; use 'chat'")
        return spec.plain_prompt(record)
    return FORMAT_INSTRUCTION + "\n\n" + spec.question(record)


def system_text(task: str, recipe: str = "dlrl") -> str | None:
    """The system message of `recipe` for `task` (the same for every record), or None: then the chat
    template adds its own default, if any, as the official code's apply_chat_template does."""
    if recipe == "dlrl":
        return None
    recipe_prompts.check_recipe(recipe, task)
    return recipe_prompts.RECIPES[recipe][task][1]
