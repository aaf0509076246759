"""Multi-host start-up: `jax.distributed.initialize` from an explicit coordinator, SLURM, or a TPU pod,
and global batches assembled from per-host rows. Single-process runs skip all of it."""

from __future__ import annotations

import os

import jax
import numpy as np

from dlrl_jax.parallel.mesh import batch_sharding
from dlrl_jax.parallel.transfer import is_lead_process, to_global, to_host  # noqa: F401  (their old home)


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               local_device_count: int | None = None) -> None:
    """Joins the job's processes. Explicit arguments (or DLRL_COORDINATOR / DLRL_NUM_PROCESSES /
    DLRL_PROCESS_ID) win; otherwise JAX's own detection handles TPU pods and SLURM. A lone process
    with nothing configured does nothing."""
    coordinator = coordinator or os.environ.get("DLRL_COORDINATOR")
    num_processes = num_processes or _env_int("DLRL_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("DLRL_PROCESS_ID")
    # CPU processes exchange collectives through gloo (the default CPU client has none across hosts);
    # the setting only concerns the CPU client, so GPU and TPU runs are unaffected. No backend may be
    # touched before initialize, hence no device query here.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator:
        if num_processes is None or process_id is None:
            raise ValueError("a coordinator address needs num_processes and process_id "
                             "(or DLRL_NUM_PROCESSES and DLRL_PROCESS_ID)")
        kwargs = {"local_device_ids": list(range(local_device_count))} if local_device_count else {}
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, **kwargs)
    elif "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        jax.distributed.initialize()  # JAX reads the coordinator and ranks from the SLURM environment
    elif os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("CLOUD_TPU_TASK_ID"):
        jax.distributed.initialize()  # TPU pod: JAX discovers the workers itself


def _env_int(name):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def global_batch(local_rows, mesh, batch_dim: int = 0):
    """A global array from this host's rows (hosts hold disjoint, equal slices of the batch)."""
    local_rows = np.asarray(local_rows)
    return jax.make_array_from_process_local_data(batch_sharding(mesh, local_rows.ndim, batch_dim), local_rows)
