"""MATH (MATH500 and MATH training rows): competition problems with a LaTeX answer.

Record: {"question": str, "answer": the reference final answer, "solution": the worked solution or
None}. Read from MATH500 ("problem", "answer") or MATH training rows that carry only a "solution"
(the reference is its last \\boxed{}, as the official rewards take it). Rewards: math-verify
equivalence of the last \\boxed{} plus format ("dlrl", `dlrl_jax.rewards.math_answer`), d1's string
normalisation ("d1", `dlrl_jax.rewards.math_strings`), ESPO's 1/0 ("espo").
"""

from __future__ import annotations

from dlrl_jax.data.readers import field, require, text_field
from dlrl_jax.rewards import math_answer, math_strings
from dlrl_jax.tasks.spec import TaskSpec, pair


def boxed_reference(solution: str) -> str | None:
    """The reference answer in a MATH worked solution as the official rewards take it (d1/EGSPO
    math500_utils.py remove_boxed(last_boxed_only_string(.))): the text after the last "\\boxed " up to
    a "$" when that spaced form occurs, else the braces of the last \\boxed{...} (nesting counted)."""
    if "\\boxed " in solution:
        return solution.split("\\boxed ")[-1].split("$")[0]
    start = solution.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    for j in range(start + len("\\boxed"), len(solution)):
        depth += {"{": 1, "}": -1}.get(solution[j], 0)
        if depth == 0:
            return solution[start + len("\\boxed{"):j]
    return None


def normalize(r: dict, where: str) -> dict:
    question = text_field(require(field(r, "question", "problem"), where, "'problem' or 'question'"), where,
                          "'problem'")
    solution = field(r, "solution")
    if solution is not None:
        solution = text_field(solution, where, "'solution'")
    answer = field(r, "answer")
    if answer is None and isinstance(field(r, "solution"), str):  # MATH train rows: only the worked solution
        answer = boxed_reference(field(r, "solution"))
    answer = require(answer, where, "'answer' (the reference final answer), or a 'solution' ending in \\boxed{}")
    return {"question": question, "answer": text_field(answer, where, "'answer'", numbers=True), "solution": solution}


def extract_answer(completion: str, reward_set: str) -> str | None:
    if reward_set == "d1":
        return math_strings.boxed_answer(completion)
    return completion if reward_set == "espo" else math_answer.last_boxed(completion)


TASK = TaskSpec(
    name="math",
    normalize=normalize,
    validate=math_answer.validate_example,
    question=lambda r: r["question"] + "\nPut the final answer in \\boxed{} inside the answer.",
    recipe_fields=lambda r: {"question": r["question"]},
    sft_answer=lambda r: r.get("answer") and f"\\boxed{{{r.get('answer')}}}",
    sft_reasoning=lambda r: r.get("solution") or "",
    reward_sets={"dlrl": pair(math_answer.math_reward,
                              lambda c, r: math_answer.math_reward(c, r, correctness_only=True)),
                 "d1": pair(math_strings.d1_math_reward, lambda c, r: float(math_strings.d1_math_correct(c, r))),
                 "espo": pair(math_answer.espo_math_reward, math_answer.espo_math_reward)},
    extract_answer=extract_answer,
)
