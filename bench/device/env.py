"""Phase env: the device, its memory, the versions, the optional modules present, and the peaks that
MFU and rooflines are taken against. Exits 2 when a GPU run finds no GPU (check.py then stops: every
later number would be the CPU's)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys

import common

# Modules the package imports that a lent machine may lack (bench/device/wheels.txt carries them).
OPTIONAL = {"qwix": "model (NF4 base; imported by dlrl_jax.models)", "grain": "data pipelines (loop, seeded)",
            "math_verify": "task registry (loop, seeded)", "pytest": "the parity oracles in tests/",
            "tensorboardX": "run.tensorboard only"}
VERSIONS = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "transformers", "numpy", "qwix", "grain")


def run():
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    missing = [m for m in OPTIONAL if importlib.util.find_spec(m) is None]
    common.emit(item="device", value=f"{device.device_kind} ({device.platform}), {jax.device_count()} device(s)")
    if stats.get("bytes_limit"):
        common.emit(item="device memory limit GiB", value=round(stats["bytes_limit"] / common.GIB, 2))
    common.emit(item="python", value=platform.python_version())
    common.emit(item="versions", value=", ".join(f"{k} {v}" for k, v in versions.items()))
    common.emit(item="host", value=f"{platform.machine()}, {os.cpu_count()} CPUs")
    for module in missing:
        common.emit(item=f"missing {module}", status="fail", value=OPTIONAL[module],
                    note="install bench/device/wheels (wheels.txt)")
    peak, bandwidth, source = common.device_peaks()
    common.emit(item=common.PEAK_ITEM, value=peak, note=source)
    common.emit(item=common.BANDWIDTH_ITEM, value=bandwidth, note=source)
    if device.platform == "gpu":  # the data sheet's peak beside what a plain bf16 matmul reaches here
        common.emit(item="measured bf16 matmul FLOP/s (8192^3)", value=common.measured_matmul_peak())
    if os.environ.get("DLRL_DEVICE_EXPECT") == "gpu" and device.platform != "gpu":
        common.emit(item="platform", status="fail", value=device.platform, note="a GPU run found no GPU")
        sys.exit(2)


if __name__ == "__main__":
    run()
