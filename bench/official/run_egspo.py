"""Runs the official EGSPO trainer (vishnutez/egspo-dllm-rl, `EGSPOTrainer`, its real class) for ONE RL
iteration on the tiny model folder and records everything the replay needs, into one .npz:

  the rollout   trajectory [T+1, B, L] (the canvas before every denoising step and the final one),
                logps [B, T, tokens per step] (the behaviour log-probs of the tokens each step committed),
  its draws     eval_time_steps [B, K] (the selected steps: EGSPO's selection, top-K entropy),
  its rewards   rewards [B*(K+1)] as the reward function returned them, advantages_per_step [B, K],
                old_per_token_logps [K, B],
  the update    loss of every micro-step, the gradient norm (before clipping) and every parameter after
                every optimizer step, and the initial parameters.

Runs in the EGSPO environment (bench/official/setup.sh), NOT in this project's venv: it imports nothing
of dlrl_jax. The official entry script (egspo_train.py) is replaced by `build_trainer` below, which
does what that script does (AutoModel + the trainer) minus the one line the CPU cannot run: bitsandbytes
4-bit quantization. Every other change is a monkeypatch applied here at run time (see PATCHES).

Usage (EGSPO venv):
    python bench/official/run_egspo.py --egspo-repo CLONE --model FOLDER --out rollout.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

# Run-time changes the official code needs here, each with its reason (REPRODUCTION.md lists them too).
PATCHES = {
    "no 4-bit": "egspo_train.py loads the model with a bitsandbytes 4-bit config, CUDA only: the model is "
                "loaded in float32 (or bf16) without quantization_config",
    "LoRA optional": "egspo_train.py always wraps the model in LoRA (its 7 target names, which on LLaDA match "
                     "q, k, v, up); --lora-rank 0 trains every parameter instead (peft_config=None), and then beta "
                     "must be 0: the trainer's reference forward is `disable_adapter()`, which needs LoRA. With "
                     "LoRA the initial adapter (peft's random lora_A, zero lora_B) is saved for the replay",
    "stand-in reward": "a reward that varies on an untrained model (the fraction of digit characters in the "
                       "completion) replaces sudoku_reward_func, which is 0 for every completion of a random "
                       "model (zero advantages would make the update trivially equal)",
}


def digit_fraction_reward(prompts, completions, **kwargs):
    """The stand-in reward: the fraction of digits among a completion's characters (0 when empty)."""
    out = []
    for completion in completions:
        text = completion[0]["content"] if isinstance(completion, list) else completion
        out.append(sum(ch.isdigit() for ch in text) / len(text) if text else 0.0)
    return out


def lora_config(args):
    """The entry scripts' LoRA (their seven target names; on LLaDA they match q, k, v and up), dropout 0;
    None for full fine-tuning (--lora-rank 0)."""
    if not args.lora_rank:
        return None
    from peft import LoraConfig
    return LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"])


def build_trainer(args, recorder):
    import torch
    from datasets import Dataset
    from transformers import AutoModel, TrainerCallback

    sys.path.insert(0, os.path.join(args.egspo_repo, "egspo"))
    os.environ.setdefault("WANDB_MODE", "disabled")  # report_to=[] already; no network here
    from egspo_config import EGSPOConfig
    from egspo_trainer import EGSPOTrainer

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    torch.manual_seed(args.seed)
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True, dtype=dtype, local_files_only=True)
    model.config.use_cache = False
    with open(os.path.join(args.model, "config.json")) as f:
        mask_id = json.load(f)["mask_token_id"]
    if args.lora_rank == 0 and args.beta != 0:
        raise SystemExit("--beta needs --lora-rank > 0: the trainer's reference is the adapter switched off")
    config = EGSPOConfig(
        output_dir=args.work_dir, model_path=args.model, seed=args.seed, data_seed=args.seed, use_cpu=True,
        bf16=args.dtype == "bfloat16", fp16=False, report_to=[], save_strategy="no", logging_steps=1,
        per_device_train_batch_size=args.group, num_generations=args.group, generation_batch_size=args.group,
        gradient_accumulation_steps=args.columns, max_steps=args.mu * args.k // args.columns,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=args.weight_decay,
        adam_beta1=args.b1, adam_beta2=args.b2, adam_epsilon=1e-8, max_grad_norm=args.grad_clip,
        beta=args.beta, epsilon=args.eps_low, epsilon_high=args.eps_high, temperature=args.temperature,
        max_completion_length=args.gen_length, block_length=args.block_length, diffusion_steps=args.steps,
        max_prompt_length=4096, remasking="low_confidence", mask_id=mask_id, cfg_scale=0.0,
        logps_eval_num_steps=args.k, num_gradient_steps=args.mu, logps_eval_time_steps_mode="high_entropy",
        logps_aggregation_mode="sum", pred_state="next", lambda1=args.lambda1, normalize_returns=True,
        log_completions=False,
        dataloader_num_workers=0, remove_unused_columns=False)
    prompt = [{"role": "user", "content": args.prompt}]
    dataset = Dataset.from_list([{"prompt": prompt, "answer": "0"}] * 4)

    class Snapshots(TrainerCallback):
        def on_optimizer_step(self, a, state, control, **kw):
            recorder.params.append({k: v.detach().float().numpy().copy() for k, v in model.named_parameters()})

    trainer = EGSPOTrainer(args=config, model=model, reward_funcs=[digit_fraction_reward],
                           train_dataset=dataset, callbacks=[Snapshots()] if recorder is not None else [],
                           peft_config=lora_config(args))
    if args.lora_rank:
        trainer.model.save_pretrained(args.out + ".adapter")  # PEFT's format: the replay loads it
    return trainer, model


class Recorder:
    def __init__(self):
        self.generate, self.inputs, self.rewards = None, None, []
        self.losses, self.columns, self.grad_norms, self.params = [], [], [], []


def hook(trainer, recorder):
    """Wraps the trainer's methods to record what passes through them; nothing they return changes."""
    cls = type(trainer)
    generate, score, loss = cls.generate, cls._generate_and_score_completions, cls.compute_loss
    rewards = trainer.reward_funcs[0]

    def recorded_generate(self, *a, **k):
        out = generate(self, *a, **k)
        trajectory, logps, distributions = out[0], out[1], out[2]
        # the selection's input as the trainer computes it (_get_high_entropy_time_steps): each step's
        # entropy, eps 1e-8 inside the log, averaged over the step's committed tokens -> [T, B]
        entropy = -(distributions * (distributions + 1e-8).log()).sum(-1).mean(-1)
        recorder.generate = [trajectory.numpy(), logps.detach().float().numpy(), entropy.float().numpy()]
        return out

    def recorded_score(self, inputs):
        out = score(self, inputs)
        recorder.inputs = out
        return out

    def recorded_loss(self, model, inputs, *a, **k):
        value = loss(self, model, inputs, *a, **k)
        recorder.losses.append(float(value.detach()))
        recorder.columns.append(self._step % self.args.logps_eval_num_steps)
        return value

    def recorded_rewards(*a, **k):
        out = rewards(*a, **k)
        recorder.rewards.extend(out)
        return out
    recorded_rewards.__name__ = rewards.__name__

    cls.generate, cls._generate_and_score_completions, cls.compute_loss = (recorded_generate, recorded_score,
                                                                            recorded_loss)
    trainer.reward_funcs = [recorded_rewards]
    clip = trainer.accelerator.clip_grad_norm_

    def recorded_clip(parameters, max_norm, *a, **k):
        norm = clip(parameters, max_norm, *a, **k)
        recorder.grad_norms.append(float(norm))
        return norm
    trainer.accelerator.clip_grad_norm_ = recorded_clip


def parse(argv=None):
    """The runner's settings (bench/official/time_official.py reads the same ones)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--egspo-repo", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", type=int, default=4, help="generations of the one prompt (the batch)")
    p.add_argument("--k", type=int, default=4, help="logps_eval_num_steps: selected steps")
    p.add_argument("--columns", type=int, default=2, help="gradient_accumulation_steps")
    p.add_argument("--mu", type=int, default=1, help="num_gradient_steps: passes over the K columns")
    p.add_argument("--gen-length", type=int, default=32)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--lambda1", type=float, default=0.0,
                   help="EGSPO-SA's stepwise weight (egspo/train.sh: 0.5 with normalize_returns true); 0: EGSPO")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--b1", type=float, default=0.9)
    p.add_argument("--b2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--lora-rank", type=int, default=0, help="0: full fine-tuning")
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--beta", type=float, default=0.0, help="KL weight (needs LoRA)")
    p.add_argument("--eps-low", type=float, default=0.2)
    p.add_argument("--eps-high", type=float, default=0.5)
    p.add_argument("--prompt", default="Fill the 4x4 sudoku: 1.3. .2.4 3.1. .4.2")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    recorder = Recorder()
    with tempfile.TemporaryDirectory() as work_dir:
        args.work_dir = work_dir
        trainer, model = build_trainer(args, recorder)
        initial = {k: v.detach().float().numpy().copy() for k, v in model.named_parameters()}
        hook(trainer, recorder)
        trainer.train()
    trajectory, logps, entropy = recorder.generate
    inputs = recorder.inputs
    arrays = {
        "trajectory": trajectory, "logps": logps, "step_entropy": entropy,
        "prompt_length": np.int64(inputs["prompt_ids"].shape[-1]),
        "eval_time_steps": inputs["eval_time_steps"].numpy(), "rewards": np.asarray(recorder.rewards, np.float32),
        "advantages_per_step": inputs["advantages_per_step"].float().numpy(),
        "old_per_token_logps": inputs["old_per_token_logps"].float().numpy(),
        "losses": np.asarray(recorder.losses, np.float64), "loss_columns": np.asarray(recorder.columns),
        "grad_norms": np.asarray(recorder.grad_norms, np.float64),
        "settings": np.asarray(json.dumps({k: v for k, v in vars(args).items() if k != "work_dir"})),
    }
    arrays.update({f"initial/{k}": v for k, v in initial.items()})
    for i, params in enumerate(recorder.params):
        arrays.update({f"step{i}/{k}": v for k, v in params.items()})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez(args.out, **arrays)
    print(f"recorded {len(recorder.losses)} micro-steps, {len(recorder.grad_norms)} optimizer steps -> {args.out}")


if __name__ == "__main__":
    main()
