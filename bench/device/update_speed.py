"""Phase update (`update_speed.py nf4|none`): the EGSPO and ESPO updates (gradient accumulation by
`lax.scan` + AdamW) of a model with random weights and the paper configs' LoRA, over an NF4 or a
bf16 base, as seconds per optimizer step and MFU, with the device's peak memory against XLA's
estimate for the compiled update and against bench/RESULTS.md's CPU estimate where one was made for
the same setting.

The items are bench/update_mfu.py's (random tokens, advantages and old/reference terms); model FLOPs
count as update_mfu.py counts them, 3 x the forward of every pass: a frozen base needs no weight
gradients, so the work LoRA needs is nearer 2 x and this MFU is the conventional, not the achieved one.
Peak memory is the process's so far (the device keeps no per-program peak): the random init's
transients, then the base's paper algorithm (NF4: EGSPO, bf16: ESPO, run first), then the other one;
"resident before" is what the weights and the previous case's leftovers hold when an update starts.
Each update runs twice, the second timed."""

from __future__ import annotations

import sys
import time

import jax
from rollout import forward_flops  # bench/rollout.py
from update_mfu import update_cases  # bench/update_mfu.py

import common

# bench/RESULTS.md, "LLaDA-8B under FSDP and LoRA": "LoRA r128 on q,k,v,up (official), nf4 base", 1 device,
# peak estimate (arguments + temporaries + outputs - aliased) of the EGSPO update at the egspo shape below
RESULTS_ESTIMATE_GIB = {("llada-8b", "nf4", "egspo"): 20.28}


def run(base: str):
    from dlrl_jax import models
    from dlrl_jax.models.lora import trainable_mask
    from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer
    from dlrl_jax.training.update import ParamPartition, make_update

    s = common.shapes("update")
    cfg = models.preset(s["preset"], remat="full", param_dtype="bfloat16", dtype="bfloat16", lora_rank=s["lora_rank"],
                        lora_alpha=s["lora_alpha"], lora_targets=tuple(s["targets"]), quantize_base=base)
    peak, _, source = common.device_peaks()
    t = time.perf_counter()
    graphdef, params = models.split(models.init_model(cfg, 0))
    jax.block_until_ready(params)
    init_s = time.perf_counter() - t
    partition = ParamPartition(params, trainable_mask(params))
    tx = make_optimizer(OptimizerSettings())
    for algorithm in s["algorithms"][base]:
        shape = s[algorithm]
        name = f"{algorithm}, {base if base != 'none' else 'bf16'} base"

        def one(shape=shape, name=name, algorithm=algorithm):
            nonlocal params
            B, P, G, T = shape["rows"], shape["prompt"], shape["gen"], shape["steps"]
            columns, samples = shape.get("columns", 1), shape.get("samples", 1)
            cases = update_cases(cfg, graphdef, B, P, G, T, columns, samples, micro_batches=shape["micro_batches"])
            label, passes, items, loss = next(c for c in cases if c[0].startswith(algorithm) and "no remat" not in c[0])
            update = make_update(loss, tx, partition)  # .jitted: (trainable, opt_state, items, frozen)
            trainable, frozen = partition.split(params)
            # a case that failed mid-step may have consumed its donated adapters: zeros cost the same FLOPs
            trainable = [jax.numpy.zeros(x.shape, x.dtype) if x.is_deleted() else x for x in trainable]
            opt_state = tx.init(trainable)
            t = time.perf_counter()
            compiled = update.jitted.lower(trainable, opt_state, items, frozen).compile()
            compile_s = time.perf_counter() - t
            estimate = common.compiled_memory_gib(compiled)
            resident = common.memory_in_use_gib()
            trainable, opt_state, metrics = compiled(trainable, opt_state, items, frozen)  # the first run
            jax.block_until_ready(metrics)
            t = time.perf_counter()
            trainable, opt_state, metrics = compiled(trainable, opt_state, items, frozen)
            jax.block_until_ready(metrics)
            seconds = time.perf_counter() - t
            params = partition.join(trainable, frozen)
            flops = passes * 3 * forward_flops(cfg, B, P + G)
            n_items = jax.tree.leaves(items)[0].shape[0]
            common.emit(case=name, update=label, rows=B, rows_per_item=B // shape["micro_batches"], items=n_items,
                        tokens=P + G, init_s=init_s, compile_s=compile_s, step_s=seconds, mfu=flops / seconds / peak,
                        tflops_per_s=flops / seconds / 1e12, resident_before_gib=resident,
                        peak_memory_gib=common.peak_memory_gib(), compiled_estimate_gib=estimate,
                        results_md_estimate_gib=RESULTS_ESTIMATE_GIB.get((s["preset"], base, algorithm)),
                        trained_params_M=sum(x.size for x in trainable) / 1e6, loss=float(metrics["loss"]),
                        skipped_step=bool(metrics["skipped"]), note=f"peak FLOP/s: {source}")
        common.guarded("case", name, one)


if __name__ == "__main__":
    run(sys.argv[1])
