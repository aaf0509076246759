"""Writes configs/paper/<model>_<task>_<algorithm>.yaml from ONE table of the official settings
(configs/paper/official.py, every value citing the official file that sets it):

    python configs/paper/generate.py

`fields()` maps the official arguments onto this project's config fields. Fields this project does not
have yet are listed in PENDING: their official values are computed (and shown in each file's header)
but not written; once a field exists, removing its name from PENDING switches it on.

Model folders are where you downloaded the checkpoints (models/LLaDA-8B-Instruct,
models/Dream-v0-Instruct-7B); data comes from the Hugging Face hub (`pip install 'dlrl_jax[hub]'`)
or from local files set with task.train_file / task.eval_file.
"""

from __future__ import annotations

import json
import math
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from official import NOT_IN_OFFICIAL_CODE, REPOS, value  # noqa: E402

# Fields of other changes in flight: computed, shown in the header, not yet written. The switch.
# (sampler.remasking exists; its value "entropy", Dream's order for ESPO on Dream, is what is pending.)
PENDING: set[str] = set()

MODELS = {"llada8b": "models/LLaDA-8B-Instruct", "dream7b": "models/Dream-v0-Instruct-7B"}
TASKS = ("gsm8k", "math", "countdown", "sudoku", "code")
ALGORITHMS = {"egspo_sa": "egspo", "egspo": "egspo", "espo": "espo", "diffu_grpo": "d1", "wd1": "wd1"}
ITERATIONS = 1000  # a budget of your choosing: the official runs are num_train_epochs over the data
ALL_ROWS = 1_000_000_000  # task.train_size: every row of the file
# PEFT matches the official target names (q_proj, ... gate_proj) by module name: LLaDA calls its output,
# gate and down projections attn_out, ff_proj and ff_out, so only q, k, v and up match there.
LORA_TARGETS = {"llada8b": "q,k,v,up", "dream7b": "q,k,v,o,gate,up,down"}


# transformers' lr_scheduler_type -> optim.schedule (the warmup is optim.warmup_steps)
SCHEDULES = {"constant_with_warmup": "constant", "constant": "constant"}


def _data(paper: str, task: str) -> dict:
    """task.* data fields: the official training set per paper (hub names; see readers.HUB_SOURCES)."""
    if task == "gsm8k":
        return {"train_file": "hf:openai/gsm8k:main:train", "eval_file": "hf:openai/gsm8k:main:test"}
    if task == "math":  # official: ankner/math-500 train (answer = the solution's last \boxed{}); eval MATH-500
        return {"train_file": "hf:ankner/math-500:train", "eval_file": "hf:HuggingFaceH4/MATH-500:test"}
    if task == "countdown":  # the 3-number rows; held-out prompts from the same data (d1's test file: --set)
        return {"train_file": "hf:Jiayi-Pan/Countdown-Tasks-3to4:train"}
    if task == "sudoku":  # stand-in for dataset/4x4_sudoku_unique_puzzles.csv: 8 blanks, as d1's test set
        return {"train_size": 20000, "min_blanks": 8, "max_blanks": 8}
    train = "hf:TIGER-Lab/AceCode-89K:train" if paper == "espo" else "hf:KodCode/KodCode-Light-RL-10K:train"
    return {"name": "code", "train_file": train, "eval_file": "hf:google-research-datasets/mbpp:sanitized:test"}


def fields(model: str, task: str, algorithm: str) -> dict:
    """Every config field (dotted name -> value) the official scripts determine, pending ones included."""
    paper = ALGORITHMS[algorithm]

    def v(name):
        return value(paper, task, name)

    G = v("num_generations")
    rows_per_micro_step = v("per_device_train_batch_size") * v("num_processes")  # over all devices
    lora = v("use_peft")
    f = {"seed": v("seed"), "model.path": MODELS[model], "model.dtype": v("torch_dtype"), "model.remat": "full",
         "model.lora_rank": v("lora_r") if lora else 0, "model.quantize_base": v("load_in_4bit"),
         "task.name": task, "task.prompt_style": "chat", "task.max_prompt_length": v("max_prompt_length"),
         "task.truncate_prompts": "left", "task.train_size": ALL_ROWS, "task.eval_size": 256,
         "task.reward_set": v("reward_set"), "task.prompt_recipe": v("prompt_recipe"), "task.decode": v("decode"),
         "sampler.gen_length": v("max_completion_length"), "sampler.block_length": v("block_length"),
         "sampler.steps": v("diffusion_steps"), "sampler.eval_temperature": 0.0,
         "sampler.noise_dtype": v("gumbel_noise_dtype"),
         "algorithm.name": algorithm, "algorithm.group_size": G, "algorithm.beta": v("beta"),
         "optim.learning_rate": v("learning_rate"), "optim.weight_decay": v("weight_decay"),
         "optim.b1": v("adam_beta1"), "optim.b2": v("adam_beta2"), "optim.grad_clip": v("max_grad_norm"),
         "optim.schedule": SCHEDULES[v("lr_scheduler_type")]}
    if lora:
        f.update({"model.lora_alpha": float(v("lora_alpha")), "model.lora_targets": LORA_TARGETS[model],
                  "model.lora_dropout": v("lora_dropout")})
    if paper == "egspo":
        # one rollout of per_device x num_processes completions trains K micro-steps (one selected step
        # column each), GA of them per optimizer step: K / GA optimizer steps per rollout
        K, GA = v("logps_eval_num_steps"), v("gradient_accumulation_steps")
        f.update({"sampler.temperature": v("temperature"), "sampler.remasking": v("remasking"),
                  "algorithm.prompts_per_batch": rows_per_micro_step // G, "algorithm.k": K,
                  "algorithm.selection": "top_k_entropy", "algorithm.aggregation": v("logps_aggregation_mode"),
                  "algorithm.lam": v("lambda1") if algorithm == "egspo_sa" else 0.0,
                  "algorithm.eps_low": v("epsilon"), "algorithm.eps_high": v("epsilon_high"), "algorithm.mu": 1,
                  "algorithm.micro_batches": 1, "algorithm.columns_per_update": GA})
        steps_per_rollout = K // GA
    else:
        # TRL: every optimizer step sees per_device x num_processes x GA completions; ESPO and d1 reuse
        # one rollout of them for num_iterations (mu) optimizer steps
        GA, mu = v("gradient_accumulation_steps"), v("num_iterations")
        f.update({"algorithm.prompts_per_batch": rows_per_micro_step * GA // G, "algorithm.mu": mu,
                  "algorithm.micro_batches": GA, "algorithm.eps_low": v("epsilon")})
        steps_per_rollout = mu
        if paper == "espo":
            # mask counts stratified over each device's batch (forward_process), not over our micro-batch
            f.update({"sampler.temperature": v("generation_temperature"), "algorithm.elbo_samples": v("num_mc"),
                      "algorithm.elbo_strata": v("per_device_train_batch_size")})
            if model == "dream7b":  # Dream's own diffusion_generate: entropy order, top_p 0.95, no blocks
                f.update({"sampler.schedule": "dream", "sampler.remasking": "entropy", "sampler.top_p": 0.95,
                          "sampler.alg_temp": 0.0, "sampler.block_length": None,
                          "sampler.dream_mask_candidate": v("dream_mask_candidate")})
                del f["sampler.noise_dtype"]
            else:
                f.update({"sampler.schedule": "blocks", "sampler.remasking": "low_confidence"})
            if not lora:  # TRL's SyncRefModelCallback; with PEFT it is a no-op (no separate reference)
                f.update({"algorithm.ref_sync_every": v("ref_model_sync_steps"),
                          "algorithm.ref_sync_mix": v("ref_model_mixup_alpha")})
        else:  # d1 and wd1 (whose trainer is d1's with another loss)
            f.update({"sampler.temperature": v("temperature"), "sampler.remasking": v("remasking"),
                      "algorithm.p_mask_prompt": v("p_mask_prompt")})
            if paper == "d1":
                f["algorithm.token_mean"] = v("token_mean")
            else:
                f["algorithm.wd1_negative_term"] = v("trainer_type") == "wll_d1_neg"
            if task == "code":  # d1 and wd1 have no code task or prompt: EGSPO's code data and prompt
                f.update({"task.prompt_recipe": "egspo"})
    if lora and paper in ("espo", "d1"):  # TRL's training_step runs model.train() before the old-policy pass
        f["algorithm.old_logprob_dropout"] = True  # (EGSPO's old log-probs are the rollout's own)
    # TRL: warmup steps = ceil(warmup_ratio x max_steps); max_steps here: ITERATIONS rollouts
    f["optim.warmup_steps"] = math.ceil(v("warmup_ratio") * ITERATIONS * steps_per_rollout)
    # TRL saves every save_steps optimizer steps: the first iteration boundary at or after them; the run
    # keeps what the paper's evaluation chooses from (EGSPO: the last 20 it evaluates; the others every
    # checkpoint their runs keep, save_total_limit, as many as the budget writes)
    f["run.save_every"] = math.ceil(v("save_steps") / steps_per_rollout)
    written = math.ceil(ITERATIONS / f["run.save_every"])
    f["run.keep_checkpoints"] = v("checkpoints_evaluated") if paper == "egspo" else min(v("save_total_limit"), written)
    for key, val in _data(paper, task).items():
        f[f"task.{key}"] = val
    return f


def config(model: str, task: str, algorithm: str) -> dict:
    """The YAML mapping: every field of `fields()` that this project has (not in PENDING)."""
    out = {}
    for dotted, val in fields(model, task, algorithm).items():
        if dotted in PENDING:
            continue
        if "." not in dotted:
            out[dotted] = val
            continue
        section, key = dotted.split(".")
        out.setdefault(section, {})[key] = val
    run = out.pop("run", {})
    out["sft"] = {"steps": 0}
    out["run"] = {"iterations": ITERATIONS, "eval_every": 100, **run, "out_dir": f"runs/{model}_{task}_{algorithm}"}
    out["mesh"] = {"data": -1, "fsdp": 1, "tensor": 1}
    return out


_BATCH = {
    "egspo": ("EGSPO (egspo/train.sh): per_device_train_batch_size 6 counts COMPLETIONS; 8 processes x 6 = 48 "
              "completions = 6 prompts x 8 per rollout. A rollout trains K = 8 micro-steps of one selected-step "
              "column each, gradient accumulation 2: 4 optimizer steps per rollout (algorithm.columns_per_update, "
              "pending). On N devices the rollout stays 48 rows (48 / N per device); algorithm.micro_batches = "
              "48 / (6 N) keeps the official 6 rows per device per micro-step (8 on one device)."),
    "espo": ("ESPO (recipes/run_<task>_llada.sh): per_device_train_batch_size counts COMPLETIONS; 8 processes x "
             "per_device x gradient_accumulation completions = 16 prompts x num_generations per optimizer step "
             "(gsm8k/countdown/sudoku 3 x 8 x 4 = 96 = 16 x 6; math 2 x 8 x 16 = 256 = 16 x 16; code 1 x 8 x 20 = "
             "160 = 16 x 10), one rollout reused for mu = 8 optimizer steps. On N devices keep the global batch and "
             "set algorithm.micro_batches = rows / (per_device x N) to keep the official rows per device per "
             "micro-step (written here for N = 8)."),
    "d1": ("d1 (diffu-grpo/slurm_scripts/train.yaml): per_device_train_batch_size 6 counts COMPLETIONS; 8 "
           "processes x 6 x gradient_accumulation 2 = 96 completions = 16 prompts x 6 per optimizer step, one "
           "rollout reused for mu = num_iterations optimizer steps. On N devices keep the global batch and set "
           "algorithm.micro_batches = 96 / (6 N) (2 for N = 8, written here; 16 on one device)."),
    "wd1": ("wd1 (wd1/train.yaml, run/wll_NP_<task>.sh): per_device_train_batch_size 6 counts COMPLETIONS; 4 "
            "processes x 6 x gradient_accumulation 2 = 48 completions = 8 prompts x 6 per optimizer step, one "
            "rollout reused for mu = num_iterations optimizer steps (no old-policy or reference pass: wd1's loss "
            "is ratio-free). On N devices keep the global batch and set algorithm.micro_batches = 48 / (6 N) (2 "
            "for N = 4, written here; 8 on one device)."),
}


# How each paper computed its reported numbers: `dlrl-jax eval --protocol` (dlrl_jax/protocols/eval_protocol.py),
# or, where no released code computes them, the closest protocol, named as such (FIDELITY.md).
_EVAL_PROTOCOL = {"egspo": "egspo", "espo": "espo", "d1": "d1"}
_EVAL_CLOSEST = {
    ("espo", "gsm8k"): "ESPO's GSM8K numbers come from OpenCompass (LLaDA, 4-shot) and Dream's lm-eval fork; the "
                       "closest here: --protocol d1",
    ("espo", "math"): "ESPO's MATH numbers come from OpenCompass (LLaDA) and Dream's lm-eval fork; the closest "
                      "here: --protocol d1",
    ("wd1", None): "wd1's wd1/eval/evalR.py is d1's eval.py (its run_eval_all.sh: batch 16, 8 at length 512: "
                   "add --batch-size 16, 8 at 512)",
}


def eval_line(model: str, task: str, algorithm: str) -> str:
    """The evaluation command of the paper's reported numbers for this config: a LoRA run's adapter on
    the original base, as the papers' eval.py loads it (PeftModel over the bf16 base, not merged)."""
    paper = ALGORITHMS[algorithm]
    cfg = config(model, task, algorithm)
    run = cfg["run"]["out_dir"]
    weights = (f"--model {cfg['model']['path']} --adapter {run}/model/adapter" if cfg["model"].get("lora_rank")
               else f"--model {run}/model")
    command = f"dlrl-jax eval {weights} --task {task} --gen-lengths 128,256,512"
    if task == "code":
        return (f"Evaluate (no released code computes the papers' code numbers; the closest to EGSPO's intended "
                f"HumanEval/MBPP pass@1, FIDELITY.md): {command} --protocol egspo --data "
                "hf:openai/openai_humaneval:test (or hf:google-research-datasets/mbpp:sanitized:test)")
    closest = _EVAL_CLOSEST.get((paper, task)) or _EVAL_CLOSEST.get((paper, None))
    if closest:
        return f"Evaluate: {closest}: {command} --protocol d1"
    return f"Evaluate as the paper: {command} --protocol {_EVAL_PROTOCOL[paper]}"


def header(model: str, task: str, algorithm: str) -> str:
    paper = ALGORITHMS[algorithm]
    pending = {k: v for k, v in fields(model, task, algorithm).items() if k in PENDING}
    notes = [text for (p, what), text in NOT_IN_OFFICIAL_CODE.items()
             if p in (paper, "all") and what in (model, task, f"{task}_train_data", "run_length")]
    lines = ["Generated by configs/paper/generate.py from configs/paper/official.py (the official scripts of",
             f"{paper}, {REPOS[paper]}, each value citing its file); edit the table, not this file.",
             "", *_wrap(_BATCH[paper]), "",
             "Applied once the field exists (official values, not yet written):",
             *[f"  {k}: {json.dumps(v)}" for k, v in sorted(pending.items())],
             "Not in the official code:", *[ln for n in notes for ln in _wrap(n, first="  -", rest="    ")],
             *_wrap(eval_line(model, task, algorithm)),
             "Differences from the official code and their switches: FIDELITY.md."]
    return "".join(f"# {ln}\n".replace("# \n", "#\n") for ln in lines)


def _wrap(text: str, width: int = 108, first: str = "", rest: str = "") -> list[str]:
    """`text` in lines of at most `width` characters, the first starting with `first`, the others `rest`."""
    out, line = [], first
    for word in text.split():
        if line.strip() and len(line) + len(word) + 1 > width:
            out.append(line)
            line = rest + word
        else:
            line = f"{line} {word}" if line.strip() else line + word
    return out + [line]


def write_all(folder: str) -> list[str]:
    names = []
    for model in MODELS:
        for task in TASKS:
            for algorithm in ALGORITHMS:
                name = f"{model}_{task}_{algorithm}.yaml"
                with open(os.path.join(folder, name), "w") as f:
                    f.write(header(model, task, algorithm) + yaml.safe_dump(config(model, task, algorithm),
                                                                            sort_keys=False))
                names.append(name)
    return names


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for old in os.listdir(here):
        if old.endswith(".yaml"):
            os.remove(os.path.join(here, old))
    write_all(here)
