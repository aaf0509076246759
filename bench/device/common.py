"""What every phase of the device check shares: its shapes (GPU or tiny), the rows it reports, its
deadline, the device's peaks and memory.

A phase is a script run in its own process by check.py. It learns its settings from the environment
(DLRL_DEVICE_MODE: gpu | tiny; DLRL_DEVICE_ROWS: the JSON-lines file it appends its rows to;
DLRL_DEVICE_DEADLINE: the Unix time at which check.py kills it) and appends each row as soon as it is
measured, so a phase killed for time or memory still leaves the rows it finished.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback

GIB = 2.0**30
# the env phase's rows that check.py passes on to every later phase (DLRL_DEVICE_PEAKS)
PEAK_ITEM, BANDWIDTH_ITEM = "peak FLOP/s used for MFU and rooflines", "bandwidth bytes/s used for rooflines"

# Dense bf16 tensor-core peak and HBM bandwidth per device kind, from the vendors' data sheets; the SXM
# parts are bench/rollout_roofline.py's DEVICES. device_kind strings: "NVIDIA H100 80GB HBM3" (SXM),
# "NVIDIA H100 PCIe", "NVIDIA H200".
_PCIE_H100 = (756e12, 2.0e12)

# The shapes of each phase. gpu: the papers' (LLaDA-8B, prompt 200 + gen 256, block 32, 128 steps); tiny:
# the same code on the tiny preset, small enough for the CPU test suite.
SHAPES = {
    "gpu": {
        # tests/rollout/test_sampler.py's and tests/objectives/test_elbo.py's cases, all of them
        "parity": {"families": ["llada", "dream"], "sampler_cases": [(8, 8, 8), (8, 4, 4), (10, 5, 6), (8, 2, 4)],
                   "elbo_stratified": [True, False]},
        "golden": {"algorithms": ["egspo", "egspo_sa", "espo", "diffu_grpo", "wd1"]},
        # batch 6: one GPU's share of an official EGSPO rollout (6 completions per device on 8 GPUs);
        # 48: the whole 6 prompts x 8 rollout on one device (the one-GPU paper config)
        "rollout": {"preset": "llada-8b", "dtype": "bfloat16", "prompt": 200, "gen": 256, "block": 32,
                    "steps": 128, "batches": [6, 48]},
        # LoRA r128 / alpha 64 on q,k,v,up (the paper configs; PEFT's official target list on LLaDA).
        # egspo: the README's one-GPU command (48 rows, one row per micro-step, 2 selected-step columns per
        # optimizer step: 96 items), the shape of bench/RESULTS.md's estimate; espo: one GPU's share of an
        # official optimizer step (3 rows per micro-step x 4 accumulation steps), prompt 400, M 2 coupled.
        "update": {"preset": "llada-8b", "lora_rank": 128, "lora_alpha": 64.0, "targets": ["q", "k", "v", "up"],
                   # base -> algorithms, its paper config's first (NF4: EGSPO's, bf16: ESPO's)
                   "algorithms": {"nf4": ["egspo", "espo"], "none": ["espo", "egspo"]},
                   "egspo": {"rows": 48, "micro_batches": 48, "columns": 2, "prompt": 200, "gen": 256, "steps": 128},
                   "espo": {"rows": 12, "micro_batches": 4, "samples": 2, "prompt": 400, "gen": 256, "steps": 128}},
        # bench/iteration.py's papers' shapes scaled down (~30M parameters), its RESULTS.md row's dtype
        "iteration": {"d_model": 512, "layers": 8, "heads": 8, "ff": 1536, "prompt": 200, "gen": 256, "block": 32,
                      "steps": 128, "group_size": 8, "dtype": "float32", "iterations": 2,
                      "algorithms": ["egspo_sa", "espo", "egspo", "diffu_grpo", "wd1"]},
        # the demo's run (configs/tiny_sudoku_egspo_sa.yaml: 110 SFT steps, 8 x 8 rows, 256 held-out
        # puzzles) shortened to 20 RL iterations
        "seeds": {"algorithm": "egspo_sa", "iterations": 20, "counts": [128, 8, 32], "sequential": 2,
                  "distinct": 8, "overrides": ["task.train_size=1024"]},
    },
    "tiny": {
        "parity": {"families": ["llada"], "sampler_cases": [(8, 4, 4)], "elbo_stratified": [True]},
        "golden": {"algorithms": ["egspo"]},
        "rollout": {"preset": "tiny", "dtype": "bfloat16", "prompt": 16, "gen": 32, "block": 8, "steps": 16,
                    "batches": [2, 8]},
        "update": {"preset": "tiny", "lora_rank": 8, "lora_alpha": 16.0, "targets": ["q", "k", "v", "up"],
                   "algorithms": {"nf4": ["egspo"], "none": ["espo"]},
                   "egspo": {"rows": 4, "micro_batches": 4, "columns": 2, "prompt": 8, "gen": 16, "steps": 8},
                   "espo": {"rows": 4, "micro_batches": 2, "samples": 1, "prompt": 8, "gen": 16, "steps": 8}},
        "iteration": {"d_model": 64, "layers": 2, "heads": 4, "ff": 128, "prompt": 16, "gen": 16, "block": 8,
                      "steps": 8, "group_size": 4, "dtype": "float32", "iterations": 2,
                      "algorithms": ["egspo_sa"]},
        "seeds": {"algorithm": "diffu_grpo", "iterations": 1, "counts": [2], "sequential": 1, "distinct": 2,
                  "overrides": ["sft.steps=1", "sft.batch_size=8", "task.train_size=16",
                                "task.eval_size=8", "algorithm.prompts_per_batch=2", "algorithm.group_size=4",
                                "sampler.gen_length=16", "sampler.steps=4"]},
    },
}


def mode() -> str:
    return os.environ.get("DLRL_DEVICE_MODE", "tiny")


def shapes(phase: str) -> dict:
    return SHAPES[mode()][phase]


def remaining() -> float:
    """Seconds until check.py kills this phase."""
    return float(os.environ.get("DLRL_DEVICE_DEADLINE", time.time() + 1e9)) - time.time()


def emit(**row) -> dict:
    """Appends one result row (phase filled in by check.py) to the phase's rows file, at once."""
    row.setdefault("status", "ok")
    path = os.environ.get("DLRL_DEVICE_ROWS")
    line = json.dumps(row, default=_plain)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
    print(line, flush=True)
    return row


def _plain(x):
    try:
        return x.item()
    except AttributeError:
        return str(x)


def skip(name_field: str, name: str, reason: str) -> dict:
    return emit(**{name_field: name}, status="skipped", note=reason)


def guarded(name_field: str, name: str, fn) -> None:
    """Runs one case; an exception becomes a failed row (with its first line) and the phase goes on."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 -- any failure of one case is a result to report
        traceback.print_exc()
        first_line = str(e).splitlines()[0][:300] if str(e) else ""
        emit(**{name_field: name}, status="fail", note=f"{type(e).__name__}: {first_line}")


def device_peaks():
    """(peak FLOP/s, bandwidth bytes/s, source) for MFU and rooflines: what the env phase found
    (DLRL_DEVICE_PEAKS, set by check.py, so that every phase divides by the same numbers), else the data
    sheet of a known GPU, else (the CPU) a matmul and a copy measured now."""
    import jax

    from rollout_roofline import DEVICES  # bench/rollout_roofline.py

    if os.environ.get("DLRL_DEVICE_PEAKS"):
        peak, bandwidth, source = os.environ["DLRL_DEVICE_PEAKS"].split(",", 2)
        return float(peak), float(bandwidth), source
    device = jax.devices()[0]
    kind = device.device_kind
    if device.platform == "gpu":
        if "H100" in kind and "PCIe" in kind:
            return (*_PCIE_H100, "H100 PCIe data sheet")
        for name, (peak, bandwidth) in DEVICES.items():
            if name.split()[0] in kind:
                return peak, bandwidth, f"{name} data sheet"
    return measured_matmul_peak(), measured_bandwidth(), "measured here"


def measured_matmul_peak() -> float:
    """The best of a few n x n matmuls in the compute dtype of the measured model (bf16 on a GPU, float32
    on the CPU, which runs bf16 dots in float32)."""
    import jax
    import jax.numpy as jnp

    from rollout import matmul_peak  # bench/rollout.py (float32)

    if jax.devices()[0].platform != "gpu":
        return matmul_peak(n=1024, reps=3)
    n = 8192
    a = jnp.ones((n, n), jnp.bfloat16)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(5))
    return 2 * n**3 / best


def measured_bandwidth() -> float:
    """Bytes/s of a device-to-device copy (read + write) of 256 MiB, best of 3."""
    import jax
    import jax.numpy as jnp

    x = jnp.ones((64, 2**20), jnp.float32)
    f = jax.jit(lambda x: x + 1.0)
    f(x).block_until_ready()
    best = min(_timed(lambda: f(x).block_until_ready()) for _ in range(3))
    return 2 * x.nbytes / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def peak_memory_gib():
    """The device's peak bytes in use so far in this process (GPU, TPU), or None (the CPU reports none)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    return stats["peak_bytes_in_use"] / GIB if stats and "peak_bytes_in_use" in stats else None


def memory_in_use_gib():
    """The device's bytes in use now, or None (the CPU reports none)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    return stats["bytes_in_use"] / GIB if stats and "bytes_in_use" in stats else None


def compiled_memory_gib(compiled):
    """XLA's estimate for one compiled program: arguments + temporaries + outputs - aliased (donated)."""
    mem = compiled.memory_analysis()
    if mem is None:
        return None
    return (mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes
            - mem.alias_size_in_bytes) / GIB


def finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0

