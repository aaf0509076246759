"""The JAX rollout against a PyTorch reference on the same weights, settings and machine.

The reference is transformers' LlamaForCausalLM run bidirectionally (a 4-D all-zero additive mask)
inside the LLaDA sampling loop of ../shared/ALGORITHMS.md §1 written plainly in PyTorch: per block,
per step, a full forward pass, argmax at temperature 0, low-confidence commits of the scheduled
number of tokens inside the active block. The same random Llama weights are saved as a Hugging Face
folder and loaded by `dlrl_jax.checkpoints.from_pretrained`; at temperature 0 both must produce the same
tokens (checked), then each is timed (best of `--repeats`, after a warm-up / compile).
With `--caches prefix,dual` the JAX rollout also runs with Fast-dLLM's approximate KV cache; those
rows report the share of tokens equal to the exact PyTorch loop's and the speed-up over it.

    python bench/torch_baseline.py [--layers 12 --d-model 768 --batch 4 --prompt 32 --gen 64 --steps 32]

Needs the test extra (torch is a test oracle, never a runtime dependency).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dlrl_jax import checkpoints, models, rollout


def schedule(masked: int, steps: int) -> list[int]:
    base, extra = divmod(masked, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


@torch.no_grad()
def torch_generate(model, prompt: torch.Tensor, gen: int, block: int, steps: int, mask_id: int) -> torch.Tensor:
    B, P = prompt.shape
    x = torch.cat([prompt, torch.full((B, gen), mask_id, dtype=torch.long)], dim=1)
    L = x.shape[1]
    bias = torch.zeros(B, 1, L, L)  # bidirectional: every position sees every other
    positions = torch.arange(L).expand(B, L)
    blocks = gen // block
    for b in range(blocks):
        lo, hi = P + b * block, P + (b + 1) * block
        for count in schedule(block, steps // blocks):
            logits = model(input_ids=x, attention_mask=bias, position_ids=positions).logits
            x0 = logits.argmax(-1)
            p = torch.softmax(logits.float(), -1).gather(-1, x0[..., None])[..., 0]
            masked = x == mask_id
            confidence = torch.where(masked, p, torch.tensor(-float("inf")))
            confidence[:, :lo] = -float("inf")
            confidence[:, hi:] = -float("inf")
            chosen = confidence.topk(count, dim=-1).indices
            commit = torch.zeros_like(masked).scatter_(1, chosen, True) & masked
            x = torch.where(commit, x0, x)
    return x


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--caches", default="none", help="comma-separated JAX cache modes: none, prefix, dual")
    args = ap.parse_args()
    torch.manual_seed(0)
    heads = args.d_model // 64
    tcfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.d_model, intermediate_size=int(args.d_model * 8 / 3) // 64 * 64,
                       num_hidden_layers=args.layers, num_attention_heads=heads, num_key_value_heads=heads,
                       tie_word_embeddings=False, attn_implementation="sdpa")
    tmodel = LlamaForCausalLM(tcfg).eval()
    mask_id = args.vocab - 1
    folder = tempfile.mkdtemp(prefix="dlrl_bench_")
    tmodel.save_pretrained(folder)
    jmodel = checkpoints.from_pretrained(folder)
    graphdef, params = models.split(jmodel)
    prompt = np.random.default_rng(0).integers(3, mask_id, (args.batch, args.prompt))
    ids, pmask = jnp.asarray(prompt, jnp.int32), jnp.ones(prompt.shape, bool)
    torch_tokens = torch_generate(tmodel, torch.from_numpy(prompt), args.gen, args.block, args.steps, mask_id).numpy()
    t_torch = best_time(lambda: torch_generate(tmodel, torch.from_numpy(prompt), args.gen, args.block, args.steps, mask_id),
                        args.repeats)
    n = sum(p.numel() for p in tmodel.parameters())
    tokens = args.batch * args.gen
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, jax {jax.__version__} "
          f"on {jax.devices()[0].platform}, torch {torch.__version__}")
    print("| model | params | batch | prompt | gen | block | steps | JAX cache | same tokens | PyTorch s | JAX s "
          "| PyTorch tok/s | JAX tok/s | JAX / PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cache in args.caches.split(","):
        settings = rollout.SamplerSettings(gen_length=args.gen, block_length=args.block, steps=args.steps,
                                           temperature=0.0, mask_id=mask_id, cache=cache)

        def jax_run():
            return rollout.generate(graphdef, params, ids, pmask, jax.random.key(0), settings).tokens.block_until_ready()

        same = float((np.asarray(jax_run()) == torch_tokens).mean())  # the first call compiles
        t_jax = best_time(jax_run, args.repeats)
        print(f"| Llama {args.layers}x{args.d_model} | {n / 1e6:.1f}M | {args.batch} | {args.prompt} | {args.gen} | "
              f"{args.block} | {args.steps} | {cache} | {same:.1%} | {t_torch:.2f} | {t_jax:.2f} | "
              f"{tokens / t_torch:.1f} | {tokens / t_jax:.1f} | {t_torch / t_jax:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
