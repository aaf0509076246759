"""Evaluation protocols: what each paper's released evaluation computes, per (protocol, task), as one
frozen `EvalProtocol` that `dlrl-jax eval --protocol P` follows.

  dlrl   this project's own evaluation (the default, unchanged): the training prompt of
         --prompt-recipe, no prefill, the task's generator, float32, batch 16, masked pads, the
         reward set's correctness term on --decode text.
  d1     dllm-reasoning/d1 eval/ (eval.py, generate.py, gsm8k/math500/countdown/sudoku.py,
         run_eval.sh) and its parser eval/parse_and_get_acc.py.
  egspo  vishnutez/egspo-dllm-rl eval/ (eval_checkpoints.py, eval_checkpoints.sh): the same dataset
         classes, generate() and decoding as d1, byte for byte; its own parse_and_get_acc.py.
  espo   ML-GSAI/ESPO eval/ (eval.py, data_utils.py, run_eval.sh): Countdown and Sudoku only, batch 1
         on one GPU; LLaDA through generate(), Dream through diffusion_generate(alg="entropy") with no
         logits hook (the mask token stays among the candidates: dream_mask_candidate "official").

What they share (eval.py): bf16 weights, temperature 0, block 32, steps = gen_length // 2, low-
confidence remasking, prompts tokenized by a plain `tokenizer(prompts)` call (its default
add_special_tokens=True: whatever the tokenizer's post-processor adds on top of the chat template),
left-padded per batch to its longest with the tokenizer's pad token and passed to the model WITHOUT
an attention mask (the pads are attended), the completion decoded with
`skip_special_tokens=False` (special tokens kept, nothing cut at EOS), and `init_seed(42)` before
the test set is built, so `np.random.choice(N, k, replace=False)` draws the same Countdown / Sudoku
subsample in every run. The rows are split over `world_size` processes by torch's DistributedSampler
without shuffling (process r takes rows r, r + W, ...) and batched in that order.

What cannot be reproduced from released code is refused here with the closest protocol named
(`ProtocolUnavailable`); FIDELITY.md has the table.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable

import numpy as np

from dlrl_jax.protocols import egspo_code
from dlrl_jax.protocols import eval_prompts as prompts

EVAL_PROTOCOLS = ("dlrl", "d1", "egspo", "espo")
DATA_DIR_ENV = "DLRL_EVAL_DATA"  # the folder holding the official test files (or --data-dir)


class ProtocolUnavailable(ValueError):
    """No protocol reproduces this paper's numbers for this task; the message names the closest one."""


@dataclasses.dataclass(frozen=True)
class EvalProtocol:
    name: str
    task: str
    source: str                                            # the official files this entry follows
    # (task, record) -> the user message; None: this project's prompt (--prompt-recipe / --prompt-style)
    user_message: Callable[[str, dict], str] | None = None
    prefill: str = ""                                      # appended after the chat template's assistant header
    default_data: str | None = None                        # a file name (in the data folder) or hf:NAME
    data_origin: str = ""                                  # where to get default_data
    subsample: int | None = None                           # k rows of the test set drawn as the official code draws
    subsample_seed: int = 42                               # eval.py init_seed(42) -> np.random.seed(42)
    dtype: str = "float32"
    batch_size: int = 16
    batch_size_at_512: int = 16                            # run_eval.sh: batch 4 when gen_length is 512
    world_size: int = 1                                    # processes the official run splits the rows over
    attend_pads: bool = False                              # left pads attended (the model called without a mask)
    dream_remasking: str = "low_confidence"                # the order Dream's sampler uses under this protocol
    dream_mask_candidate: str = "exclude"                  # official: the mask token a candidate (sample_tokens)
    keep_special_tokens: bool = False                      # the parser reads batch_decode(skip_special_tokens=False)
    add_special_tokens: bool = False                       # prompts tokenized as tokenizer(prompts) with its defaults
    parser: str | None = None                              # the protocol the official parser belongs to; None: ours
    reward_set: str = "dlrl"                               # the paper's training reward, for the reward column

    def batch_size_for(self, gen_length: int) -> int:
        return self.batch_size_at_512 if gen_length == 512 else self.batch_size

    def render(self, tokenizer, record: dict) -> str:
        """The whole prompt text the official code tokenizes: chat template over one user message,
        then the prefill."""
        return tokenizer.chat_prompt(self.user_message(self.task, record)) + self.prefill


_D1_DATA = {  # d1 eval/*.py load_test_dataset; EGSPO and ESPO ship the same dataset/ files byte for byte
    "gsm8k": ("hf:openai/gsm8k:main:test", 'load_dataset("gsm8k", "main", split="test"), 1319 rows'),
    "math": ("hf:HuggingFaceH4/MATH-500:test", 'load_dataset("HuggingFaceH4/MATH-500", split="test"), 500 rows'),
    "countdown": ("countdown_cd3_test.jsonl", "https://github.com/dllm-reasoning/d1 dataset/countdown_cd3_test.jsonl "
                                               "(256 rows)"),
    "sudoku": ("4x4_test_sudoku.csv", "https://github.com/dllm-reasoning/d1 dataset/4x4_test_sudoku.csv (500 rows)"),
}
# eval.py num_evals: {"gsm8k": -1, "math": -1, "countdown": 256, "sudoku": 256} (-1: every row, in file order).
# Countdown's file has 256 rows: its "subsample" is a permutation of all of them.
_SUBSAMPLE = {"gsm8k": None, "math": None, "countdown": 256, "sudoku": 256}
_D1_MESSAGES = {"gsm8k": prompts.d1_user_message(prompts.GSM_SYSTEM_PROMPT),
                "math": prompts.d1_user_message(prompts.MATH500_SYSTEM_PROMPT),
                "countdown": prompts.d1_user_message(prompts.CTD_SYSTEM_PROMPT),
                "sudoku": prompts.d1_user_message(prompts.SUDOKU_SYSTEM_PROMPT)}
_ESPO_MESSAGES = {"countdown": prompts.espo_countdown_message,
                  "sudoku": prompts.d1_user_message(prompts.ESPO_SUDOKU_SYSTEM_PROMPT)}


def _paper(name: str, task: str, message, source: str, **decoding) -> EvalProtocol:
    data, origin = _D1_DATA[task]
    return EvalProtocol(name=name, task=task, source=source, user_message=message, prefill=prompts.PREFILL,
                        default_data=data, data_origin=origin, subsample=_SUBSAMPLE[task], dtype="bfloat16",
                        attend_pads=True, keep_special_tokens=True, add_special_tokens=True, parser=name,
                        # ESPO eval.py's Dream call; d1 and EGSPO release no Dream evaluation, so theirs is used.
                        # It passes no generation_logits_hook_func: the mask token stays among the candidates.
                        dream_remasking="entropy", dream_mask_candidate="official", **decoding)


_TABLE: dict[tuple[str, str], EvalProtocol] = {}
for _task, _message in _D1_MESSAGES.items():
    # run_eval.sh (d1, 8 GPUs) / eval_checkpoints.sh (EGSPO, 4 nodes x 2 GPUs): batch 8, 4 at length 512
    _TABLE["d1", _task] = _paper("d1", _task, _message, f"{prompts.D1_EVAL}eval.py, run_eval.sh", batch_size=8,
                                 batch_size_at_512=4, world_size=8, reward_set="d1")
    _TABLE["egspo", _task] = _paper("egspo", _task, _message,
                                    "vishnutez/egspo-dllm-rl eval/eval_checkpoints.py, eval_checkpoints.sh",
                                    batch_size=8, batch_size_at_512=4, world_size=8, reward_set="d1")
for _task, _message in _ESPO_MESSAGES.items():  # run_eval.sh: NUM_GPUS=1, batch_size=1
    _TABLE["espo", _task] = _paper("espo", _task, _message, f"{prompts.ESPO_EVAL}, eval.py, run_eval.sh",
                                   batch_size=1, batch_size_at_512=1, world_size=1, reward_set="espo")

# EGSPO code: eval/human_eval.py and mbpp.py build their prompts as gsm8k.py does; eval.py would run
# them as every other task (it refuses --dataset humaneval/mbpp: FIDELITY.md), so the same decoding.
_TABLE["egspo", "code"] = dataclasses.replace(
    _TABLE["egspo", "gsm8k"], task="code", user_message=prompts.egspo_code_message, default_data=None,
    source="vishnutez/egspo-dllm-rl eval/human_eval.py, mbpp.py, parser_json.py (closest to its intended "
           "evaluation: the release cannot run as published)",
    data_origin="HumanEval (load_dataset(\"openai/openai_humaneval\", split=\"test\"), 164 problems) or MBPP "
                "sanitized (load_dataset(\"mbpp\", \"sanitized\", split=\"test\"), 257)")
CODE_TEST_SETS = ("hf:openai/openai_humaneval:test", "hf:google-research-datasets/mbpp:sanitized:test")

_UNAVAILABLE = {
    ("espo", "gsm8k"): "ESPO's LLaDA GSM8K numbers come from OpenCompass (4-shot GSM8K, LLaDA's opencompass "
                       "configs) and its Dream numbers from Dream's lm-eval fork, not from ESPO's eval/ (Countdown "
                       "and Sudoku only)",
    ("espo", "math"): "ESPO's LLaDA MATH numbers come from OpenCompass and its Dream numbers from Dream's lm-eval "
                      "fork, not from ESPO's eval/ (Countdown and Sudoku only)",
    ("espo", "code"): "ESPO's code numbers come from OpenCompass for LLaDA (humaneval_gen_8e312c: 'Complete the "
                      "following python code:'; mbpp_gen_830460: 3-shot on MBPP's full 500-problem test split) and "
                      "Dream's lm-eval fork (humaneval_instruct, mbpp_instruct), not from ESPO's eval/",
    ("d1", "code"): "d1 evaluates no code task",
}
_CLOSEST = {"gsm8k": "--protocol d1 (zero-shot, the same LLaDA decoding)", "math": "--protocol d1",
            "code": "--protocol egspo --data hf:openai/openai_humaneval:test (zero-shot instruct prompt, greedy "
                    "pass@1; no protocol here reproduces OpenCompass or lm-eval), or --protocol dlrl"}


def get(name: str, task: str) -> EvalProtocol:
    """The protocol `name` for `task`; refused in one line where the paper's numbers do not come from
    code that can run here, naming the closest protocol."""
    if name not in EVAL_PROTOCOLS:
        raise ProtocolUnavailable(f"--protocol {name!r} is unknown; use one of {', '.join(EVAL_PROTOCOLS)}")
    if name == "dlrl":
        return EvalProtocol(name="dlrl", task=task, source="this project (dlrl_jax/app/evaluation.py)")
    if (name, task) in _UNAVAILABLE:
        raise ProtocolUnavailable(f"--protocol {name} --task {task}: {_UNAVAILABLE[name, task]}; not reproducible "
                                  f"here (FIDELITY.md, evaluation protocols); the closest is {_CLOSEST[task]}")
    if (name, task) not in _TABLE:
        raise ProtocolUnavailable(f"--protocol {name} has no {task} evaluation; its tasks: "
                                  f"{', '.join(t for n, t in _TABLE if n == name)}")
    return _TABLE[name, task]


def subsample_indices(n: int, k: int | None, seed: int = 42) -> list[int]:
    """The rows the official evaluation scores, in its order: `np.random.choice(n, k, replace=False)`
    right after `np.random.seed(seed)` (nothing draws from numpy's global generator in between:
    model and tokenizer loading and the dataset's file reading use none), or every row in file order."""
    if k is None:
        return list(range(n))
    if k > n:
        raise ValueError(f"the protocol scores {k} rows drawn from the test set, which has only {n}")
    return [int(i) for i in np.random.RandomState(seed).choice(n, k, replace=False)]


def official_batches(rows: int, world_size: int, batch_size: int) -> list[list[int]]:
    """Positions 0..rows-1 grouped as the official run batches them: DistributedSampler without
    shuffling gives process r the positions r, r + W, r + 2W, ... (no padding rows: eval.py's
    CustomDistributedSampler), and each process's DataLoader batches them in that order. Which rows
    share a batch matters only through the batch's pad width (its longest prompt)."""
    groups = []
    for rank in range(world_size):
        mine = list(range(rank, rows, world_size))
        groups += [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]
    return groups


def ground_truth(task: str, record: dict):
    """The record's `ground_truth` as the official generation JSON stores it (d1 eval/*.py
    __getitem__): GSM8K the float `Parser.extract_answer_gsm8k` takes after "####" (None when it
    finds no number), MATH the `answer` string, Countdown [numbers, target], Sudoku the solution
    string; code: EGSPO's (HumanEval's test, MBPP's imports and asserts) for a HumanEval or MBPP
    record, else its tests."""
    if task == "gsm8k":  # eval/parsers.py: r"####\s*\$?([\d,]+(?:\.\d+)?)", commas dropped
        found = re.search(r"####\s*\$?([\d,]+(?:\.\d+)?)", "#### " + str(record["answer"]))
        return float(found.group(1).replace(",", "")) if found else None
    if task == "countdown":
        return [list(record["numbers"]), int(record["target"])]
    if task == "sudoku":
        return record["solution"]
    if task == "code":
        return egspo_code.ground_truth(record) if record.get("benchmark") else record.get("tests")
    return record["answer"]


def locate_data(protocol: EvalProtocol, data_dir: str | None) -> str:
    """The protocol's default test set: a hub name as it is, or its file in `data_dir` (--data-dir,
    else $DLRL_EVAL_DATA). A missing file is one line naming it and where to get it."""
    name = protocol.default_data
    if name is None:  # code: two test sets, the user names one
        raise FileNotFoundError(f"--protocol {protocol.name} --task {protocol.task} evaluates {protocol.data_origin}: "
                                f"pass --data {CODE_TEST_SETS[0]} or --data {CODE_TEST_SETS[1]} (or a local "
                                "JSONL/Parquet copy with their columns)")
    if name.startswith("hf:"):
        return name
    folder = data_dir or os.environ.get(DATA_DIR_ENV)
    if folder and os.path.isfile(os.path.join(folder, name)):
        return os.path.join(folder, name)
    where = (f"not in {folder} (--data-dir / ${DATA_DIR_ENV}); download {protocol.data_origin} into it"
             if folder else f"not found (no --data-dir, ${DATA_DIR_ENV} unset); download {protocol.data_origin} "
                            f"and give its folder as --data-dir or ${DATA_DIR_ENV}")
    raise FileNotFoundError(f"--protocol {protocol.name} --task {protocol.task} reads {name}, {where}; or pass "
                            "--data FILE")


def parser_text(tokenizer, completion_ids) -> list[str]:
    """What the official parsers read: `tokenizer.batch_decode(ids, skip_special_tokens=False)` of the
    whole completion (EOS and chat tokens kept, text after an EOS kept)."""
    return tokenizer.hf.batch_decode(np.asarray(completion_ids).tolist(), skip_special_tokens=False)
