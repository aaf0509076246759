"""Orbax checkpoints of the training state: a pytree of arrays (params, optimizer state, reference
params, RNG key data) plus JSON metadata (iteration, data-iterator state, summary so far, config).

Saves are asynchronous (Orbax's CheckpointManager: arrays are copied off the device before `save`
returns, then written in the background). Orbax's preservation policies keep the newest N, and with
`keep_best` also the `keep_best` checkpoints with the highest held-out reward (saved with a metric
{"eval_reward": ...}; checkpoints without one are kept only while among the newest). A save
interrupted half-way never replaces the previous finished one: Orbax writes into a temporary folder
and commits a step by an atomic rename, and `latest_step` only sees committed steps.

Every committed step gets a manifest of content hashes (STEP/SHA256SUMS, folders.manifest),
written atomically by Orbax's background finalize thread once the step is final (after its commit
rename, before older steps are deleted); `verify(step)` checks it. A kill in the moment between the
commit and the manifest leaves a step without one, like a step written before manifests existed.

Restoring takes abstract targets (`jax.ShapeDtypeStruct`s with shardings), so a checkpoint written on
one mesh restores onto another: each array is read straight into the target sharding.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from dlrl_jax.folders.manifest import verify_manifest, write_manifest

METRIC = "eval_reward"


class _QuietUnrankedSaves(logging.Filter):
    """Orbax warns on every save without metrics once best-N retention is on; saves between
    evaluations are meant to be unranked (kept only while among the newest). Its background threads
    also log every failed write of a full disk with a traceback; the run reports that in one line."""

    def filter(self, record):
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += str(record.exc_info[1])
        # a full disk: the run stops on it with one line of its own (dlrl_jax.cli)
        return "did not provide metrics" not in message and "No space left on device" not in message


logging.getLogger("absl").addFilter(_QuietUnrankedSaves())


def abstract_like(tree):
    """ShapeDtypeStructs (with shardings, for concrete arrays) of a pytree of arrays."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class _ManifestingManager(ocp.CheckpointManager):
    """Orbax's manager, writing each step's manifest once the step is final. `_finalize_checkpoint` runs
    on the finalize thread (or inline for a synchronous save) after the step's commit and before the
    retention policy deletes older steps, on the primary process; the step folder exists only if the
    commit succeeded."""

    def _finalize_checkpoint(self, step: int):
        result = super()._finalize_checkpoint(step)
        folder = os.path.join(str(self.directory), str(step))
        if jax.process_index() == 0 and os.path.isdir(folder):
            write_manifest(folder)
        return result


class TrainStateCheckpointer:
    def __init__(self, directory: str, max_to_keep: int = 3, keep_best: int = 0):
        self.directory = os.path.abspath(directory)
        policies = [preservation_policy.LatestN(n=max_to_keep)]
        if keep_best:
            policies.append(preservation_policy.BestN(get_metric_fn=lambda metrics: metrics[METRIC], n=keep_best,
                                                      keep_checkpoints_without_metrics=False))
        # best_fn only makes Orbax write the metrics into each step, so that they survive a restart
        self._closed = False
        self.manager = _ManifestingManager(self.directory, options=ocp.CheckpointManagerOptions(
            create=True, preservation_policy=preservation_policy.AnyPreservationPolicy(policies),
            best_fn=(lambda metrics: metrics[METRIC]) if keep_best else None))

    def save(self, step: int, state, meta: dict | None = None, eval_reward: float | None = None) -> None:
        """Starts saving `state` (a pytree of arrays) and `meta` (JSON) as `step`, ranked by `eval_reward`
        when given; returns once the arrays are copied, so the caller may donate or overwrite them.

        A disk without room for the arrays is refused here (OSError ENOSPC naming the folder), before
        Orbax's background writers start and fail one by one."""
        need = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
        free = shutil.disk_usage(self.directory).free
        if free < need / 2:  # (Orbax may compress: only a clear misfit is refused here)
            raise OSError(errno.ENOSPC, f"No space left on device: a checkpoint of {need / 2**20:.1f} MiB of arrays "
                                        f"cannot fit in the {free / 2**20:.1f} MiB free", self.directory)
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta or {})),
                          metrics=None if eval_reward is None else {METRIC: float(eval_reward)})

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(self, step: int, target):
        """(state, meta) of `step`, the state laid out as `target` (abstract or concrete arrays) says."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_like(target)), meta=ocp.args.JsonRestore()))
        return restored["state"], dict(restored["meta"] or {})

    def verify(self, step: int) -> bool:
        """True when `step` matches its manifest, False when it has none; a changed, missing or broken file
        raises folders.manifest.ManifestMismatch naming it."""
        return verify_manifest(self.step_folder(step))

    def step_folder(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def read_meta(self, step: int) -> dict:
        """The JSON metadata of `step` alone (no arrays are read)."""
        restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"] or {})

    def set_aside(self, step: int) -> str:
        """Moves an unreadable `step` out of the way (into DIRECTORY.unreadable/, kept for inspection, not
        deleted), so that the run falls back to the previous one and may write this step again."""
        aside = os.path.join(self.directory + ".unreadable", f"{step}-{int(time.time())}")
        os.makedirs(os.path.dirname(aside), exist_ok=True)
        os.rename(os.path.join(self.directory, str(step)), aside)
        self.manager.reload()
        return aside

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        if not self._closed:  # (closed early when its folder is dropped, then again by the run's exit)
            self._closed = True
            self.manager.wait_until_finished()
            self.manager.close()


def nonfinite_leaves(tree) -> list[str]:
    """The paths of the floating-point arrays of `tree` that hold a NaN or an infinity (a restored
    state with them is refused: training on would only spread them)."""
    bad = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating) and not bool(jnp.isfinite(leaf).all()):
            bad.append(jax.tree_util.keystr(path))
    return bad
