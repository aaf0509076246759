"""Runs the official ESPO trainer (ML-GSAI/ESPO, `ESPOTrainer`, its real class) for ONE RL iteration on
the tiny model folder and records, into one .npz: the rollout (prompt + completion ids), its rewards and
advantages, its random draws (the mask seeds and, for every seed, the completion mask that ESPO's
`forward_process` drew from it), each micro-step's loss, each optimizer step's gradient norm (before
clipping) and every parameter after every optimizer step.

Runs in the ESPO environment (bench/official/setup.sh). Changes, all at run time (PATCHES): the entry
script espo_train.py is replaced by `build_trainer`; the rest is the repository's code.

Usage (ESPO venv):
    python bench/official/run_espo.py --espo-repo CLONE --model FOLDER --out espo.npz
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
    "LLaDA path": "ESPOTrainer picks LLaDA's sampler and logits by the substring 'LLaDA' in the model path: the "
                  "folder is loaded through a symlink named LLaDA-tiny",
    "mask id": "ESPOTrainer sets processing_class.mask_token_id = 126336 (LLaDA-8B's) after __init__ and "
               "generate() defaults mask_id to 126336: both are set to the tiny model's mask id",
    "LoRA optional": "espo_train.py passes a LoRA config when the recipe asks for one; --lora-rank 0 trains "
                     "every parameter (beta > 0 then uses TRL's reference copy of the model)",
    "stand-in reward": "as for EGSPO: the digit fraction (the official rewards are 0 on a random model)",
}


class Recorder:
    def __init__(self):
        self.inputs, self.rewards, self.masks = None, [], {}
        self.losses, self.grad_norms, self.params = [], [], []


def build_trainer(args, recorder, link_dir):
    import torch
    from datasets import Dataset
    from transformers import AutoModel, TrainerCallback

    sys.path.insert(0, os.path.join(args.espo_repo, "espo"))
    os.environ.setdefault("WANDB_MODE", "disabled")
    import espo_trainer
    from configs import GRPOConfig
    from espo_trainer import ESPOTrainer

    path = os.path.join(link_dir, "LLaDA-tiny")
    os.symlink(os.path.abspath(args.model), path)
    torch.manual_seed(args.seed)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model = AutoModel.from_pretrained(path, trust_remote_code=True, torch_dtype=dtype, local_files_only=True)
    with open(os.path.join(args.model, "config.json")) as f:
        mask_id = json.load(f)["mask_token_id"]
    config = GRPOConfig(
        output_dir=os.path.join(link_dir, "out"), seed=args.seed, data_seed=args.seed, use_cpu=True,
        bf16=args.dtype == "bfloat16", report_to=[], save_strategy="no", logging_steps=1,
        per_device_train_batch_size=args.group, num_generations=args.group, generation_batch_size=args.group,
        gradient_accumulation_steps=1, num_iterations=args.mu, max_steps=args.mu,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=args.weight_decay,
        adam_beta1=args.b1, adam_beta2=args.b2, adam_epsilon=1e-8, max_grad_norm=args.grad_clip,
        beta=args.beta, epsilon=args.eps, scale_rewards=False, max_completion_length=args.gen_length,
        max_prompt_length=4096, diffusion_steps=args.steps, generation_temperature=args.temperature,
        num_mc=args.num_mc, log_completions=False, remove_unused_columns=False)
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": args.prompt}], "answer": "0"}] * 4)

    class Snapshots(TrainerCallback):
        def on_optimizer_step(self, a, state, control, **kw):
            recorder.params.append({k: v.detach().float().numpy().copy() for k, v in model.named_parameters()})

    trainer = ESPOTrainer(args=config, model=model, reward_funcs=[digit_fraction_reward], train_dataset=dataset,
                          callbacks=[Snapshots()] if recorder is not None else [], peft_config=lora_config(args))
    if args.lora_rank:
        trainer.model.save_pretrained(args.out + ".adapter")  # PEFT's format: the replay loads it
    trainer.processing_class.mask_token_id = mask_id  # patch "mask id" (its __init__ set 126336)
    return trainer, model, espo_trainer, mask_id


def hook(trainer, recorder, module, mask_id):
    cls = type(trainer)
    generate, score, loss = cls.generate, cls._generate_and_score_completions, cls.compute_loss
    forward_process = module.forward_process
    rewards = trainer.reward_funcs[0]

    def generate_with_mask_id(self, *a, **k):
        return generate(self, *a, **dict(k, mask_id=mask_id))  # patch "mask id" (its default is 126336)

    def recorded_score(self, inputs):
        out = score(self, inputs)
        recorder.inputs = out
        return out

    def recorded_forward_process(batch, prompt_index, mask_id_, seed=None):
        noisy, ratio = forward_process(batch, prompt_index, mask_id_, seed=seed)
        P = int(prompt_index.sum())
        if (batch[:, P:] == mask_id_).any():
            raise ValueError("a completion holds the mask token itself; its masks cannot be recorded")
        recorder.masks[int(seed)] = (noisy[:, P:] == mask_id_).numpy()
        return noisy, ratio

    def recorded_loss(self, model, inputs, *a, **k):
        value = loss(self, model, inputs, *a, **k)
        recorder.losses.append(float(value.detach()))
        return value

    def recorded_rewards(*a, **k):
        out = rewards(*a, **k)
        recorder.rewards.extend(out)
        return out
    recorded_rewards.__name__ = rewards.__name__

    cls.generate, cls._generate_and_score_completions, cls.compute_loss = (generate_with_mask_id, recorded_score,
                                                                            recorded_loss)
    module.forward_process = recorded_forward_process
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
    p.add_argument("--espo-repo", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--mu", type=int, default=2, help="num_iterations: optimizer steps on one rollout")
    p.add_argument("--num-mc", type=int, default=2, help="Monte-Carlo ELBO samples (each two coupled passes)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--gen-length", type=int, default=32, help="a multiple of 32: ESPO hard-codes blocks of 32")
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
    p.add_argument("--beta", type=float, default=0.01)
    p.add_argument("--prompt", default="Fill the 4x4 sudoku: 1.3. .2.4 3.1. .4.2")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    recorder = Recorder()
    with tempfile.TemporaryDirectory() as link_dir:
        trainer, model, module, mask_id = build_trainer(args, recorder, link_dir)
        initial = {k: v.detach().float().numpy().copy() for k, v in model.named_parameters()}
        hook(trainer, recorder, module, mask_id)
        trainer.train()
    inputs = recorder.inputs
    seeds = inputs["mask_seeds"].numpy()[0]  # [num_iterations, num_mc] (gradient accumulation 1)
    masks = np.stack([np.stack([recorder.masks[int(s)] for s in row]) for row in seeds])  # [mu, M, B, G]
    arrays = {
        "prompt_ids": inputs["prompt_ids"].numpy(), "completion_ids": inputs["completion_ids"].numpy(),
        "rewards": np.asarray(recorder.rewards, np.float32), "advantages": inputs["advantages"].float().numpy(),
        "mask_seeds": seeds, "masks": masks,
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
