"""Runs the official diffu-GRPO trainer (dllm-reasoning/d1, `DiffuGRPOTrainer`, its real class) for ONE
RL iteration on the tiny model folder and records, into one .npz: the rollout (prompt + completion ids,
completion mask), its rewards and advantages, its random draws (the mask seed of every optimizer step
and the prompt mask `forward_process` drew from it), each micro-step's loss, each optimizer step's
gradient norm (before clipping) and every parameter after every optimizer step.

Runs in the d1 environment (bench/official/setup.sh). Changes, all at run time (PATCHES): the entry
script diffu_grpo_train.py is replaced by `build_trainer`; the rest is the repository's code.

Usage (d1 venv):
    python bench/official/run_d1.py --d1-repo CLONE --model FOLDER --out d1.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

from run_egspo import digit_fraction_reward, lora_config  # the same stand-in reward (bench/official/run_egspo.py)

PATCHES = {
    "no 4-bit": "diffu_grpo_train.py loads LLaDA with a bitsandbytes 4-bit config (CUDA only): float32 here",
    "LoRA optional": "diffu_grpo_train.py wraps the model in LoRA; --lora-rank 0 trains every parameter "
                     "instead, and then beta must be 0 (the reference forward is `disable_adapter()`)",
    "trl fields": "d1 pins trl to a git commit between releases 0.15.2 (no num_iterations) and 0.16.0 (which "
                  "reads epsilon_high and scale_rewards from the config, fields DiffuGRPOConfig lacks): trl 0.16.0 "
                  "with config.epsilon_high = None (0.16's 'same as epsilon') and scale_rewards = False set on "
                  "the config object (the trainer's own advantages never read it), and trainer.epsilon = "
                  "config.epsilon (the commit's GRPOTrainer set self.epsilon, 0.16.0 sets epsilon_low / _high)",
    "seed type": "forward_process is called with int(seed) instead of a 0-d tensor: Python 3.11's random.seed "
                 "refuses tensors (d1's env.yml has Python 3.10); torch.manual_seed draws the same masks",
    "mask id": "the config's mask_id (default 126336, LLaDA-8B's) is set to the tiny model's",
    "stand-in reward": "as for EGSPO: the digit fraction (the official rewards are 0 on a random model)",
}


class Recorder:
    def __init__(self):
        self.inputs, self.rewards, self.masks, self.seeds = None, [], {}, []
        self.losses, self.grad_norms, self.params = [], [], []


def build_trainer(args, recorder, work_dir):
    import torch
    from datasets import Dataset
    from transformers import AutoModel, TrainerCallback

    sys.path.insert(0, os.path.join(args.d1_repo, "diffu-grpo"))
    os.environ.setdefault("WANDB_MODE", "disabled")
    from diffu_grpo_config import DiffuGRPOConfig
    from diffu_grpo_trainer import DiffuGRPOTrainer

    torch.manual_seed(args.seed)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True, torch_dtype=dtype, local_files_only=True)
    model.config.use_cache = False
    with open(os.path.join(args.model, "config.json")) as f:
        mask_id = json.load(f)["mask_token_id"]
    if args.lora_rank == 0 and args.beta != 0:
        raise SystemExit("--beta needs --lora-rank > 0: the trainer's reference is the adapter switched off")
    config = DiffuGRPOConfig(
        output_dir=os.path.join(work_dir, "out"), seed=args.seed, data_seed=args.seed, use_cpu=True,
        bf16=args.dtype == "bfloat16", report_to=[], save_strategy="no", logging_steps=1,
        per_device_train_batch_size=args.group, num_generations=args.group, generation_batch_size=args.group,
        gradient_accumulation_steps=1, num_iterations=args.mu, max_steps=args.mu,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=args.weight_decay,
        adam_beta1=args.b1, adam_beta2=args.b2, adam_epsilon=1e-8, max_grad_norm=args.grad_clip,
        beta=args.beta, epsilon=args.eps, max_completion_length=args.gen_length, max_prompt_length=4096,
        block_length=args.block_length or args.gen_length, diffusion_steps=args.steps, temperature=args.temperature,
        cfg_scale=0.0,
        remasking="low_confidence", mask_id=mask_id, p_mask_prompt=args.p_mask_prompt, random_masking=True,
        log_completions=False, remove_unused_columns=False)
    config.epsilon_high, config.scale_rewards = None, False  # patch "trl fields"
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": args.prompt}], "answer": "0"}] * 4)

    class Snapshots(TrainerCallback):
        def on_optimizer_step(self, a, state, control, **kw):
            recorder.params.append({k: v.detach().float().numpy().copy() for k, v in model.named_parameters()})

    trainer = DiffuGRPOTrainer(args=config, model=model, reward_funcs=[digit_fraction_reward],
                               train_dataset=dataset, callbacks=[Snapshots()] if recorder is not None else [],
                               peft_config=lora_config(args))
    if args.lora_rank:
        trainer.model.save_pretrained(args.out + ".adapter")  # PEFT's format: the replay loads it
    trainer.epsilon = config.epsilon  # patch "trl fields"
    return trainer, model, None, mask_id


def hook(trainer, recorder, module, mask_id):
    cls = type(trainer)
    score, loss, forward_process = cls._generate_and_score_completions, cls.compute_loss, cls.forward_process
    rewards = trainer.reward_funcs[0]

    def recorded_score(self, inputs):
        out = score(self, inputs)
        recorder.inputs = out
        return out

    def recorded_forward_process(self, batch, prompt_index, mask_id_, seed=None):
        # patch "seed type": the seed is a 0-d tensor (torch.randint); accelerate's set_seed hands it to
        # random.seed, which Python 3.11 refuses; torch.manual_seed, the only generator the mask uses, reads
        # the same value from int(seed)
        noisy, p_mask = forward_process(self, batch, prompt_index, mask_id_, seed=int(seed))
        P = int(prompt_index.sum())
        if (batch[:, :P] == mask_id_).any():
            raise ValueError("a prompt holds the mask token itself; its masks cannot be recorded")
        recorder.masks[int(seed)] = (noisy[:, :P] == mask_id_).numpy()
        return noisy, p_mask

    def recorded_loss(self, model, inputs, *a, **k):
        # the seed this micro-step reads, as compute_loss picks it (its _step was already incremented)
        recorder.seeds.append(int(inputs["mask_seeds"][self._step % self.args.num_iterations]))
        value = loss(self, model, inputs, *a, **k)
        recorder.losses.append(float(value.detach()))
        return value

    def recorded_rewards(*a, **k):
        out = rewards(*a, **k)
        recorder.rewards.extend(out)
        return out
    recorded_rewards.__name__ = rewards.__name__

    cls._generate_and_score_completions, cls.compute_loss, cls.forward_process = (recorded_score, recorded_loss,
                                                                                   recorded_forward_process)
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
    p.add_argument("--d1-repo", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--mu", type=int, default=2, help="num_iterations: optimizer steps on one rollout")
    p.add_argument("--p-mask-prompt", type=float, default=0.3)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--gen-length", type=int, default=32)
    p.add_argument("--block-length", type=int, default=0, help="0: one block of --gen-length")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--b1", type=float, default=0.9)
    p.add_argument("--b2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eps", type=float, default=0.2)
    p.add_argument("--lora-rank", type=int, default=0, help="0: full fine-tuning")
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--beta", type=float, default=0.0, help="k3 KL weight (needs LoRA)")
    p.add_argument("--prompt", default="Fill the 4x4 sudoku: 1.3. .2.4 3.1. .4.2")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    recorder = Recorder()
    with tempfile.TemporaryDirectory() as work_dir:
        trainer, model, module, mask_id = build_trainer(args, recorder, work_dir)
        initial = {k: v.detach().float().numpy().copy() for k, v in model.named_parameters()}
        hook(trainer, recorder, module, mask_id)
        trainer.train()
    inputs = recorder.inputs
    masks = np.stack([recorder.masks[s] for s in recorder.seeds])  # [optimizer steps, B, P]: the step's prompt mask
    arrays = {
        "prompt_ids": inputs["prompt_ids"].numpy(), "completion_ids": inputs["completion_ids"].numpy(),
        "completion_mask": inputs["completion_mask"].numpy(), "rewards": np.asarray(recorder.rewards, np.float32),
        "advantages": inputs["advantages"].float().numpy(), "mask_seeds": np.asarray(recorder.seeds),
        "masks": masks,
        "losses": np.asarray(recorder.losses, np.float64), "grad_norms": np.asarray(recorder.grad_norms, np.float64),
        "settings": np.asarray(json.dumps(vars(args))),
    }
    arrays.update({f"initial/{k}": v for k, v in initial.items()})
    for i, params in enumerate(recorder.params):
        arrays.update({f"step{i}/{k}": v for k, v in params.items()})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez(args.out, **arrays)
    print(f"recorded {len(recorder.losses)} micro-steps, {len(recorder.grad_norms)} optimizer steps -> {args.out}")


if __name__ == "__main__":
    main()
