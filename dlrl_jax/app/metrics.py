"""Metrics sinks: metrics.jsonl always, TensorBoard events (tensorboardX) and Weights & Biases when
asked. W&B runs online or offline as its own settings say (WANDB_MODE=offline, `wandb sync` later)."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from dlrl_jax.config import ConfigError, to_dict


class MetricsWriter:
    """Appends one JSON object per call to RUN_DIR/metrics.jsonl; mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str, tensorboard: bool = True, enabled: bool = True, wandb_project: str | None = None,
                 config: dict | None = None):
        """`enabled=False` (every process but the lead in a multi-host job) writes nothing."""
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.enabled = enabled
        self._file = open(self.path, "a") if enabled else None
        self._tb = None
        if tensorboard and enabled:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        self._wandb = None
        if wandb_project and enabled:
            import wandb
            self._wandb = wandb.init(project=wandb_project, dir=run_dir, config=config or {},
                                     name=os.path.basename(os.path.abspath(run_dir)))

    def write(self, phase: str, step: int, values: dict) -> None:
        if not self.enabled:
            return
        record = {"phase": phase, "step": int(step), "time": time.time()}
        for key, value in values.items():
            array = np.asarray(value)
            record[key] = array.tolist() if array.ndim else float(array)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        scalars = {f"{phase}/{k}": v for k, v in record.items() if isinstance(v, float) and k != "time"}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:  # phases count their own steps, so the step is logged as a value
            self._wandb.log(dict(scalars, **{f"{phase}/step": step}))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def open_run_metrics(cfg, lead: bool) -> MetricsWriter:
    """The sink of a training run (`Run`'s `open_metrics`): RUN_DIR/metrics.jsonl, TensorBoard
    with `run.tensorboard`, W&B with `run.wandb_project`; only the lead process writes."""
    if cfg.run.wandb_project and lead:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ConfigError("run.wandb_project is set but wandb is not installed; pip install "
                              "'dlrl_jax[wandb]' (or unset run.wandb_project)") from None
    return MetricsWriter(cfg.run.out_dir, tensorboard=cfg.run.tensorboard, enabled=lead,
                         wandb_project=cfg.run.wandb_project, config=to_dict(cfg))


def read_metrics(run_dir: str, torn_tail: list | None = None) -> list[dict]:
    """The rows of RUN_DIR/metrics.jsonl. A line that is not JSON is a DataError naming it, except,
    with `torn_tail` (a list), the last line: a run killed mid-write (or still writing) leaves it
    torn; it is dropped and its line number appended to `torn_tail`."""
    from dlrl_jax.data.readers import DataError

    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path) as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
    rows = []
    for i, (n, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if torn_tail is not None and i == len(lines) - 1:
                torn_tail.append(n)
                break
            raise DataError(f"{path} line {n}: not a JSON row ({e.msg}); remove or repair that line") from None
        if not isinstance(row, dict) or not {"phase", "step"} <= set(row):
            raise DataError(f"{path} line {n}: not a metrics row (an object with phase and step); remove or repair "
                            "that line")
        rows.append(row)
    return rows


def truncate_metrics(run_dir: str, iteration: int) -> None:
    """Drops what a run wrote after its checkpoint at `iteration` (RL rows of later iterations, later
    evaluations and checkpoints), so a resumed run's metrics read as if it had never stopped."""
    def keep(record):
        if record["phase"] == "rl":
            return record["step"] < iteration
        return not (record["phase"] in ("eval", "checkpoint") and record["step"] > iteration)
    _rewrite(run_dir, keep)


def truncate_sft_metrics(run_dir: str, step: int, evaluations: int) -> None:
    """Keeps what a run wrote before its SFT checkpoint at `step`: SFT rows of earlier steps and its
    first `evaluations` evaluation rows (the initial one); drops the rest."""
    left = [evaluations]

    def keep(record):
        if record["phase"] == "sft":
            return record["step"] < step
        if record["phase"] == "eval" and left[0] > 0:
            left[0] -= 1
            return True
        return False
    _rewrite(run_dir, keep)


def _rewrite(run_dir: str, keep) -> None:
    """metrics.jsonl with only the records `keep(record)` accepts (a line torn by a kill goes too)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if keep(record):
                kept.append(line)
    tmp = f"{path}.tmp-{os.getpid()}"  # replaced in one rename: a kill mid-rewrite keeps the old rows
    with open(tmp, "w") as f:
        f.writelines(kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
