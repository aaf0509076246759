"""Per-device memory of the EGSPO update of LLaDA-8B under FSDP and LoRA, from XLA's memory analysis
of the update compiled for a mesh of fake CPU devices from abstract arrays (no weights exist; nothing
is allocated): full fine-tuning with FSDP over 8, 16 and 64 devices, and LoRA r128 (alpha 64 on
q,k,v,o,gate,up,down) on 1 and 8 devices, with a bf16 base and with an NF4 base (QLoRA,
model.quantize_base=nf4).

The batch is the papers': per device 6 prompts x 8 samples (48 rows, one row per micro-batch),
prompt 200 + completion 256 tokens, K = 8 of 128 steps of which each optimizer step accumulates 2 (the
official schedule), full rematerialisation, bf16 compute; trainable weights and AdamW moments in float32
(a full fine-tune's float32 master weights; LoRA's float32 factors).

    python bench/scale_memory.py          # every row
    python bench/scale_memory.py --nf4    # the NF4-base rows only
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=64"

import functools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from dlrl_jax import models, parallel  # noqa: E402
from dlrl_jax.models.config import LORA_TARGETS  # noqa: E402
from dlrl_jax.models.lora import trainable_mask  # noqa: E402
from dlrl_jax.objectives import stepwise  # noqa: E402
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer  # noqa: E402
from dlrl_jax.training.update import ParamPartition, make_update  # noqa: E402
from update_memory import abstract_egspo_items  # noqa: E402  (bench/update_memory.py)

GIB = 2.0**30
PROMPT, GEN, STEPS, K, ROWS_PER_DEVICE = 200, 256, 128, 8, 48
COLUMNS = 2  # the official schedule: one optimizer step accumulates 2 selected-step columns


def sharded_abstract(params, mesh):
    leaves, treedef = jax.tree.flatten(params)
    shardings = jax.tree.leaves(parallel.param_shardings(params, mesh))
    return jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)
                                        for x, s in zip(leaves, shardings)])


def opt_abstract_for(tx, params, mesh):
    """The optimizer state's abstract arrays: moments sharded like their parameters, counters replicated."""
    abstract = jax.eval_shape(tx.init, params)
    shardings = parallel.like_params_shardings(abstract, jax.tree.map(lambda x: x.sharding, params), mesh)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings)


def items_for(mesh, rows):
    # one micro-batch = one row per device; rows split over the devices on axis 1
    return abstract_egspo_items(ROWS_PER_DEVICE * COLUMNS, rows // ROWS_PER_DEVICE, PROMPT, GEN,
                                sharding=lambda ndim: parallel.batch_sharding(mesh, ndim, 1))


def analyse(name, devices, lora_rank, dtype="bfloat16", quantize_base="none", targets=None):
    cfg = models.preset("llada-8b", remat="full", param_dtype=dtype, dtype=dtype, quantize_base=quantize_base)
    if lora_rank:
        cfg = cfg.replace(lora_rank=lora_rank, lora_alpha=64.0, lora_targets=tuple(targets or LORA_TARGETS))
    mesh = parallel.make_mesh(1, devices, 1, devices=jax.devices()[:devices])
    graphdef, params = models.split(models.abstract_model(cfg))
    params = sharded_abstract(params, mesh)
    if not lora_rank:  # a full fine-tune trains float32 master weights (LoRA factors are float32 already)
        params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, jax.numpy.float32, sharding=x.sharding), params)

    tx = make_optimizer(OptimizerSettings())
    rows = ROWS_PER_DEVICE * devices
    loss = functools.partial(stepwise.stepwise_loss, graphdef, total_rows=rows,
                             settings=stepwise.StepwiseLossSettings(mask_id=cfg.mask_token_id, tokens_per_step=GEN / STEPS,
                                                                    column_weight=1.0 / COLUMNS))
    items = items_for(mesh, rows)
    t = time.perf_counter()
    with jax.set_mesh(mesh):  # as in training: the model keeps activations split by rows over the mesh
        compiled, trainable_params = _compile(loss, tx, params, items, mesh, lora_rank)
    seconds = time.perf_counter() - t
    mem = compiled.memory_analysis()
    total = (mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes
             - mem.alias_size_in_bytes) / GIB
    return (name, devices, trainable_params / 1e9, rows, mem.argument_size_in_bytes / GIB, mem.temp_size_in_bytes / GIB,
            mem.output_size_in_bytes / GIB, mem.alias_size_in_bytes / GIB, total, seconds)


def _compile(loss, tx, params, items, mesh, lora_rank):
    if lora_rank:
        partition = ParamPartition(params, trainable_mask(params))
        trainable, frozen = partition.split(params)
        opt_abstract = opt_abstract_for(tx, trainable, mesh)
        compiled = make_update(loss, tx, partition).jitted.lower(trainable, opt_abstract, items, frozen).compile()
        trainable_params = sum(x.size for x in trainable)
    else:
        opt_abstract = opt_abstract_for(tx, params, mesh)
        compiled = make_update(loss, tx).lower(params, opt_abstract, items).compile()
        trainable_params = models.param_count(params)
    return compiled, trainable_params


def nf4_rows():
    """LoRA r128 on an NF4 base: codes (4 bits) and float32 scales per 64 weights instead of bf16; the
    last rows adapt what the official runs adapt on LLaDA (PEFT's names match q, k, v and up only)."""
    return ([analyse("LoRA r128, nf4 base", n, 128, quantize_base="nf4") for n in (1, 8)]
            + [analyse("LoRA r128, nf4 base, f32 compute", 1, 128, "float32", quantize_base="nf4")]
            + [analyse("LoRA r128 on q,k,v,up (official), nf4 base", n, 128, quantize_base="nf4",
                       targets=("q", "k", "v", "up")) for n in (1, 8)])


def main():
    if "--nf4" in sys.argv[1:]:
        return _print(nf4_rows())
    rows = [analyse("full fine-tune, FSDP", n, 0) for n in (8, 16, 64)]
    rows += [analyse("LoRA r128", n, 128) for n in (1, 8)]
    # The CPU compiler runs bf16 dots in f32 and hoists the converts of whole stacked weights out of the
    # layer loop; float32 weights show the temporaries without those copies.
    rows += [analyse("full fine-tune, FSDP, f32 weights", 8, 0, "float32"),
             analyse("LoRA r128, f32 weights", 1, 128, "float32")]
    _print(rows + nf4_rows())


def _print(rows):
    print(f"jax {jax.__version__}; LLaDA-8B EGSPO update, per-device GiB from XLA's memory analysis "
          f"(fake CPU devices, abstract arrays)")
    print("| setting | devices | trained params (B) | global rows | arguments | temporaries | outputs | aliased "
          "| peak estimate | compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]} | {r[4]:.2f} | {r[5]:.2f} | {r[6]:.2f} | {r[7]:.2f} | "
              f"{r[8]:.2f} | {r[9]:.0f} |")


if __name__ == "__main__":
    main()
