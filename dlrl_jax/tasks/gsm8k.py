"""GSM8K: grade-school word problems with a number as the answer.

Record: {"question": str, "answer": the final number, "solution": the worked solution or None}.
Read from GSM8K's own layout ("answer" ending in "#### n", split into solution and answer) or any
file with "question" and "answer". Rewards (`dlrl_jax.rewards.gsm8k`): d1's up to 4.0 (correctness 2,
integer, formats, tags), or ESPO's 1/0.
"""

from __future__ import annotations

from dlrl_jax.data.readers import field, require, text_field
from dlrl_jax.rewards import gsm8k as rewards
from dlrl_jax.tasks.spec import TaskSpec, pair


def normalize(r: dict, where: str) -> dict:
    question = text_field(require(field(r, "question", "problem"), where, "'question'"), where, "'question'")
    answer = text_field(require(field(r, "answer"), where, "'answer'"), where, "'answer'", numbers=True)
    solution = None
    if "####" in answer:  # GSM8K's own layout: worked solution, then "#### final answer"
        solution, answer = answer.rsplit("####", 1)
        solution = solution.strip()
    return {"question": question, "answer": answer.strip().replace(",", ""), "solution": solution}


def extract_answer(completion: str, reward_set: str) -> str | None:
    if reward_set == "espo":
        return rewards.espo_extract_answer(completion)
    if reward_set == "d1":
        return rewards.extract_answer(completion)
    return rewards.extract_answer(completion) if "<answer>" in completion else None


TASK = TaskSpec(
    name="gsm8k",
    normalize=normalize,
    validate=rewards.validate_example,
    question=lambda r: r["question"] + "\nGive the final number alone in the answer.",
    recipe_fields=lambda r: {"question": r["question"]},
    sft_answer=lambda r: r.get("answer"),
    sft_reasoning=lambda r: r.get("solution") or "",
    reward_sets={"dlrl": pair(rewards.gsm8k_reward, lambda c, r: rewards.gsm8k_reward(c, r, correctness_only=True)),
                 "d1": pair(rewards.official_gsm8k_reward,
                            lambda c, r: float(rewards.official_gsm8k_terms(c, r)["correctness"] > 0)),
                 "espo": pair(rewards.espo_gsm8k_reward, rewards.espo_gsm8k_reward)},
    extract_answer=extract_answer,
)
