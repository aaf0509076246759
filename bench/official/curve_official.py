"""Issue 27 item 4, the official side: trains an official trainer (its real class, its real Sudoku data
builder and reward function) for --iterations RL iterations from the shared warm start
(bench/official/warm_start.py), recording each iteration's mean rollout reward, and saves the final
weights as a model folder dlrl_jax loads, so that one evaluator (bench/official/curves.py) scores both
systems' final models on the same held-out puzzles.

Runs in the trainer's environment (bench/official/setup.sh); imports nothing of dlrl_jax. Trainers:
  d1     diffu-GRPO, `DiffuGRPOTrainer` (dllm-reasoning/d1), built by bench/official/run_d1.py's
         `build_trainer` (its run-time patches: no 4-bit, full fine-tuning, trl 0.16 fields, seed type,
         mask id), then given what diffu_grpo_train.py gives it for `--dataset sudoku`:
         `data_utils.get_sudoku_questions()` (d1's prompt) shuffled with the run's seed, and
         `reward_func.sudoku_reward_func`.
  egspo  EGSPO / EGSPO-SA (--lambda1), `EGSPOTrainer` (vishnutez/egspo-dllm-rl), built by
         bench/official/run_egspo.py's `build_trainer`, then given what egspo_train.py gives it for
         sudoku (its data_utils and reward_func, the same text as d1's). The recorded reward of an
         iteration is the mean over the final completions only (`rollout_rewards`).
  espo   ESPO, `ESPOTrainer` (ML-GSAI/ESPO), built by bench/official/run_espo.py's `build_trainer` (its
         run-time patches: the LLaDA path, the mask id, full fine-tuning), then given what espo_train.py
         gives it for `--dataset_name sudoku`: `espo.data_utils.get_sudoku_questions()` (ESPO's prompt, with
         its worked example; not shuffled, as espo_train.py) and `espo.rewards.reward_func_sudoku`.
Changes for the curves, beyond the runners' (CURVE_PATCHES): the puzzles are read from --train-csv (d1's
training CSV is not in the public snapshot; the warm start's train.csv has its schema); prompts are cut to
--max-prompt-length tokens by the trainer's own `prompt_ids[:, -max_prompt_length:]`.

Usage (d1 venv):
    python bench/official/curve_official.py --trainer d1 --repo D1_CLONE --model WARM/model \
        --train-csv WARM/train.csv --seed 0 --iterations 100 --out OUT
writes OUT/rewards.json ({"rewards": [mean reward per iteration], "seconds": [...], settings}) and
OUT/model (the final weights, model.safetensors, with the warm start's config and tokenizer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

CURVE_PATCHES = {
    "training data": "get_sudoku_questions reads dataset/4x4_sudoku_unique_puzzles.csv beside the code (absent "
                     "from the public snapshot): its pandas.read_csv is pointed at --train-csv, same schema; the "
                     "rest of the function (d1's prompt and fields) is the repository's",
    "held-out rows": "diffu_grpo_train.py keeps the last 500 shuffled rows for evaluation; the harness's "
                     "held-out puzzles are a separate file (the warm start's test.csv), so every row trains",
}

MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
               "special_tokens_map.json", "modeling_llada.py", "configuration_llada.py")


def read_training_csv_from(data_utils, train_csv: str) -> None:
    """Patch "training data": the repository's data_utils reads `train_csv` wherever its
    get_sudoku_questions points pandas.read_csv; every other pandas name is pandas' own."""
    import pandas

    class _Pandas:
        def __getattr__(self, name):
            return getattr(pandas, name)

        @staticmethod
        def read_csv(path, **kw):
            return pandas.read_csv(train_csv, **kw)

    data_utils.pd = _Pandas()


def _runner_flags(a, *extra) -> list[str]:
    """The runner's command-line flags for this curve run's settings shared by run_d1.py and run_espo.py,
    and the named `extra` ones (each runner's flag is the setting's name with dashes)."""
    names = ("seed", "group", "mu", "gen_length", "steps", "temperature", "lr", "weight_decay", "grad_clip",
             "dtype") + extra
    return ["--model", a.model, "--out", os.path.join(a.out, "unused.npz"),
            *[x for n in names for x in ("--" + n.replace("_", "-"), str(getattr(a, n)))]]


def d1_args(a):
    """run_d1.py's settings for one curve run."""
    import run_d1
    return run_d1.parse(["--d1-repo", a.repo, *_runner_flags(a, "p_mask_prompt", "block_length", "eps")])


def build_d1(a, work_dir):
    import run_d1

    trainer, model, _, _ = run_d1.build_trainer(d1_args(a), None, work_dir)
    forward_process = type(trainer).forward_process

    def int_seed_forward_process(self, batch, prompt_index, mask_id, seed=None):  # run_d1's patch "seed type"
        return forward_process(self, batch, prompt_index, mask_id, seed=int(seed))
    type(trainer).forward_process = int_seed_forward_process
    import data_utils  # d1 diffu-grpo/data_utils.py (run_d1 put the folder on sys.path)
    import reward_func

    read_training_csv_from(data_utils, a.train_csv)
    dataset = data_utils.get_sudoku_questions().shuffle(seed=a.seed)  # as diffu_grpo_train.py
    trainer.train_dataset = dataset
    trainer.reward_funcs = [reward_func.sudoku_reward_func]
    trainer.args.max_steps = a.iterations * a.mu  # one rollout per num_iterations optimizer steps
    trainer.max_prompt_length = a.max_prompt_length
    return trainer, model


def egspo_args(a):
    """run_egspo.py's settings for one curve run (EGSPO-SA with --lambda1 0.5, EGSPO with 0)."""
    import run_egspo
    args = run_egspo.parse([
        "--egspo-repo", a.repo, "--model", a.model, "--out", os.path.join(a.out, "unused.npz"),
        "--seed", str(a.seed), "--group", str(a.group), "--k", str(a.k), "--columns", str(a.columns),
        "--mu", str(a.mu), "--gen-length", str(a.gen_length), "--block-length", str(a.block_length),
        "--steps", str(a.steps), "--temperature", str(a.temperature), "--lambda1", str(a.lambda1),
        "--lr", str(a.lr), "--weight-decay", str(a.weight_decay), "--grad-clip", str(a.grad_clip),
        "--eps-low", str(a.eps), "--eps-high", str(a.eps_high), "--dtype", a.dtype])
    return args


def build_egspo(a, work_dir):
    import run_egspo

    args = egspo_args(a)
    args.work_dir = work_dir
    trainer, model = run_egspo.build_trainer(args, None)
    import data_utils  # egspo/data_utils.py (run_egspo put the folder on sys.path)
    import reward_func

    read_training_csv_from(data_utils, a.train_csv)
    trainer.train_dataset = data_utils.get_sudoku_questions().shuffle(seed=a.seed)  # as egspo_train.py
    trainer.reward_funcs = [reward_func.sudoku_reward_func]
    trainer.args.max_steps = a.iterations * a.mu * a.k // a.columns  # optimizer steps per rollout: mu K / GA
    trainer.max_prompt_length = a.max_prompt_length
    return trainer, model


def espo_args(a):
    """run_espo.py's settings for one curve run."""
    import run_espo
    return run_espo.parse(["--espo-repo", a.repo, *_runner_flags(a, "num_mc", "eps", "beta")])


def build_espo(a, work_dir):
    import run_espo

    if a.block_length != 32:
        raise SystemExit(f"--block-length {a.block_length}: ESPOTrainer generates in blocks of 32 (hard-coded)")
    trainer, model, _, mask_id = run_espo.build_trainer(espo_args(a), None, work_dir)
    cls = type(trainer)
    generate = cls.generate

    def generate_with_mask_id(self, *args, **kw):  # run_espo's patch "mask id" (its default is 126336)
        return generate(self, *args, **dict(kw, mask_id=mask_id))
    cls.generate = generate_with_mask_id
    sys.path.insert(0, a.repo)  # ESPO's modules import each other as the package `espo`
    from espo import data_utils, rewards

    read_training_csv_from(data_utils, a.train_csv)
    trainer.train_dataset = data_utils.get_sudoku_questions()  # espo_train.py: get_datasets("sudoku"), unshuffled
    trainer.reward_funcs = [rewards.reward_func_sudoku]
    trainer.args.max_steps = a.iterations * a.mu  # one rollout per num_iterations optimizer steps
    trainer.max_prompt_length = a.max_prompt_length
    return trainer, model


BUILDERS = {"d1": build_d1, "egspo": build_egspo, "espo": build_espo}


def rollout_rewards(trainer_name: str, rewards: list[float], k: int) -> list[float]:
    """The rewards of the rollout's final completions in one reward call: EGSPOTrainer scores, row by
    row, the one-step greedy completions of the K selected steps and then the final completion
    (egspo_trainer.py: `rewards_per_func.reshape(-1, K + 1, ...)[:, -1]`); d1 scores the final ones only."""
    if trainer_name == "egspo":
        if len(rewards) % (k + 1):
            raise ValueError(f"EGSPO scored {len(rewards)} completions, not a multiple of K + 1 = {k + 1}")
        return rewards[k::k + 1]
    return rewards


def record_rewards(trainer, log, trainer_name: str, k: int):
    """Wraps the reward function: each call scores one rollout (one RL iteration)."""
    inner = trainer.reward_funcs[0]
    start = [time.perf_counter()]

    def recorded(*args, **kw):
        out = inner(*args, **kw)
        now = time.perf_counter()
        final = rollout_rewards(trainer_name, list(out), k)
        log["rewards"].append(float(sum(final) / len(final)))
        log["seconds"].append(now - start[0])
        start[0] = now
        return out
    recorded.__name__ = inner.__name__
    trainer.reward_funcs = [recorded]


def save_model(model, source: str, out: str) -> str:
    """OUT/model: the trained weights under the names the folder had, beside the source's config and
    tokenizer (read by dlrl_jax.models.from_pretrained)."""
    from safetensors.torch import save_file

    folder = os.path.join(out, "model")
    os.makedirs(folder, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    for name in MODEL_FILES:
        if os.path.isfile(os.path.join(source, name)):
            shutil.copyfile(os.path.join(source, name), os.path.join(folder, name))
    return folder


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trainer", required=True, choices=sorted(BUILDERS))
    p.add_argument("--repo", required=True, help="your clone of the trainer's official repository")
    p.add_argument("--model", required=True, help="the warm start's model folder")
    p.add_argument("--train-csv", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--group", type=int, default=8, help="completions per prompt; one prompt per iteration")
    p.add_argument("--mu", type=int, default=2, help="d1: optimizer steps per rollout (num_iterations); "
                                                      "EGSPO: passes over the K columns (num_gradient_steps)")
    p.add_argument("--k", type=int, default=4, help="EGSPO: selected steps (logps_eval_num_steps)")
    p.add_argument("--columns", type=int, default=2, help="EGSPO: columns per AdamW step (gradient accumulation)")
    p.add_argument("--lambda1", type=float, default=0.5, help="EGSPO: the stepwise weight (0: EGSPO)")
    p.add_argument("--eps-high", type=float, default=0.5, help="EGSPO's upper clip")
    p.add_argument("--p-mask-prompt", type=float, default=0.15)
    p.add_argument("--num-mc", type=int, default=2, help="ESPO: Monte-Carlo ELBO samples")
    p.add_argument("--beta", type=float, default=0.01,
                   help="ESPO: the k2 KL weight (full fine-tuning: against a reference copy)")
    p.add_argument("--max-prompt-length", type=int, default=100)
    p.add_argument("--gen-length", type=int, default=64)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=0.2)
    p.add_argument("--eps", type=float, default=0.5, help="d1's epsilon; EGSPO's lower clip")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    return p.parse_args(argv)


def main(argv=None):
    a = parse(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the runners beside this file
    os.makedirs(a.out, exist_ok=True)
    log = {"rewards": [], "seconds": [], "settings": vars(a), "patches": CURVE_PATCHES}
    with tempfile.TemporaryDirectory() as work_dir:
        trainer, model = BUILDERS[a.trainer](a, work_dir)
        record_rewards(trainer, log, a.trainer, a.k)
        start = time.perf_counter()
        trainer.train()
        log["total_seconds"] = time.perf_counter() - start
    if len(log["rewards"]) != a.iterations:
        raise SystemExit(f"expected {a.iterations} rollouts, the trainer scored {len(log['rewards'])}")
    save_model(model, a.model, a.out)
    with open(os.path.join(a.out, "rewards.json"), "w") as f:
        json.dump(log, f, indent=1)
    r = log["rewards"]
    n = min(10, len(r))
    print(f"{a.trainer} seed {a.seed}: {len(r)} iterations, mean reward first {n} {sum(r[:n]) / n:.3f}, "
          f"last {n} {sum(r[-n:]) / n:.3f}, {log['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
