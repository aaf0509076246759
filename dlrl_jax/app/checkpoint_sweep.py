"""`dlrl-jax eval --checkpoints RUN_DIR`: evaluates the kept RL checkpoints of a training run (or the
last N) and reports, per generation length, the last, the best and the mean accuracy over them, with
the papers' selection rules named:

- egspo: the best of the last 20 checkpoints (vishnutez/egspo-dllm-rl eval/eval_checkpoints.sh
  NUM_CHECKPOINTS=20; eval_checkpoints.py takes `sorted(os.listdir(checkpoint_dir))[::-1][:20]`, a
  LEXICOGRAPHIC order of TRL's `checkpoint-<global step>` names, so "checkpoint-800" comes after
  "checkpoint-2000"; get_and_save_metrics.py then takes, per length, the maximum accuracy, the newest
  checkpoint winning ties). `--checkpoint-order lexicographic` reproduces that choice over the names
  TRL would have given these checkpoints (`checkpoint-<optimizer steps>`); this project's own order,
  the default, is numeric: the newest N.
- d1: the best checkpoint (of every kept one).
- espo: one checkpoint: the last.

With a rule, the checkpoint written before RL (iteration 0) is left out: TRL's first checkpoint comes
after `save_steps` optimizer steps, so the papers never choose the model they started from.

Each checkpoint is evaluated as `dlrl-jax eval` evaluates a model, into its own folder
`OUT/step_<iteration>/` (resumable: a rerun skips what is written). A LoRA run is evaluated as the
papers evaluate theirs: its adapter, written in PEFT's format to `step_<iteration>/adapter`, on the
original base (`model.path`, not the quantized copy a QLoRA run trains on; a preset base is written
once to `OUT/base`). A full fine-tune's checkpoint is written as a model folder
(`step_<iteration>/model`), evaluated, then deleted: its results keep the weights' sha256.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from dlrl_jax import config as config_lib
from dlrl_jax.app.evaluation import EvalError, EvalSettings, evaluate_model, settings_meta, upgraded_meta
from dlrl_jax.checkpoints import save_pretrained
from dlrl_jax.checkpoints.peft import save_adapter
from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer, abstract_like
from dlrl_jax.folders.atomic import replace_folder
from dlrl_jax.folders.manifest import verify_manifest
from dlrl_jax.models.lora import adapter_off, has_lora, trainable_mask
from dlrl_jax.training import precision, setup
from dlrl_jax.training.update import ParamPartition


@dataclasses.dataclass(frozen=True)
class Rule:
    last: int        # checkpoints the paper chooses from (0: every kept one)
    order: str       # numeric | lexicographic: how "the last N" are chosen
    pick: str        # best | last: which of them the paper reports
    text: str


RULES = {
    "egspo": Rule(20, "lexicographic", "best", "EGSPO: the best of the last 20 checkpoints, per length "
                  "(eval/eval_checkpoints.py sorts the checkpoint names lexicographically)"),
    "d1": Rule(0, "numeric", "best", "d1: the best checkpoint, per length"),
    "espo": Rule(1, "numeric", "last", "ESPO: one checkpoint, the last"),
}


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    step: int             # RL iterations done (the Orbax step)
    optimizer_steps: int  # TRL's global step at the same point

    @property
    def official_name(self) -> str:
        """The folder name TRL's Trainer gives a checkpoint after this many optimizer steps."""
        return f"checkpoint-{self.optimizer_steps}"


def list_checkpoints(run_dir: str) -> tuple[list[Checkpoint], config_lib.Config]:
    """The run's kept RL checkpoints (oldest first) and the run's config (from the newest one)."""
    folder = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(folder):
        raise EvalError(f"--checkpoints {run_dir}: no checkpoints/ folder there; give the run folder of a "
                        "`dlrl-jax train` run (the one holding checkpoints/ and config.json)")
    checkpointer = TrainStateCheckpointer(folder, max_to_keep=1 << 30)  # (reading only: nothing may be pruned)
    try:
        steps = sorted(checkpointer.all_steps())
        if not steps:
            raise EvalError(f"--checkpoints {run_dir}: checkpoints/ holds no finished checkpoint")
        metas = {step: checkpointer.read_meta(step) for step in steps}
    finally:
        checkpointer.close()
    try:
        cfg = config_lib.from_dict(metas[steps[-1]]["config"])
    except (KeyError, config_lib.ConfigError) as e:
        raise EvalError(f"--checkpoints {run_dir}: checkpoint {steps[-1]} holds no readable run config ({e}); "
                        "evaluate its exported model with --model instead") from None
    found = [Checkpoint(step, int(metas[step].get("optimizer_steps", step))) for step in steps]
    return found, cfg


def choose(found: list[Checkpoint], last: int, order: str) -> list[Checkpoint]:
    """The last `last` checkpoints (0: all): the newest by step (numeric), or the lexicographically
    greatest official names, as EGSPO's eval_checkpoints.py chooses (lexicographic). Oldest first."""
    if last < 0:
        raise EvalError(f"--last must be >= 0 (0: every kept checkpoint), got {last}")
    if order == "numeric":
        chosen = found[-last:] if last else found
    elif order == "lexicographic":
        chosen = sorted(found, key=lambda c: c.official_name, reverse=True)[:last or len(found)]
    else:
        raise EvalError(f"--checkpoint-order {order!r} is unknown; use numeric or lexicographic")
    return sorted(chosen, key=lambda c: c.step)


def report(accuracy: dict[int, dict[int, float]], rule: str | None = None) -> list[dict]:
    """Per generation length: `last` (the newest checkpoint), `best` (the highest accuracy; the newest
    wins a tie, as max over EGSPO's newest-first list does), `mean` (over the checkpoints) and, with
    a rule, `selected`: what that paper reports. `accuracy[step][gen_length]`."""
    steps = sorted(accuracy)
    out = []
    for g in sorted({g for by_length in accuracy.values() for g in by_length}):
        values = {s: accuracy[s][g] for s in steps}
        best = max(reversed(steps), key=lambda s: values[s])  # (max keeps the first maximum: the newest)
        row = {"gen_length": g, "checkpoints": steps, "accuracy": {str(s): values[s] for s in steps},
               "last": {"step": steps[-1], "accuracy": values[steps[-1]]},
               "best": {"step": best, "accuracy": values[best]},
               "mean": float(np.mean([values[s] for s in steps]))}
        if rule:
            row["selected"] = dict(row[RULES[rule].pick], rule=rule, text=RULES[rule].text)
        out.append(row)
    return out


def sweep(run_dir: str, settings: EvalSettings, last: int = 0, order: str = "numeric", rule: str | None = None,
          log=print, stop=None) -> list[dict]:
    """Evaluates the chosen checkpoints of `run_dir` with `settings` (its model / adapter / out_dir are
    set here per checkpoint; `settings.out_dir` is the sweep's folder) and returns `report(...)`,
    also written to OUT/checkpoint_sweep.json."""
    if rule is not None and rule not in RULES:
        raise EvalError(f"--selection {rule!r} is unknown; use one of {', '.join(RULES)}")
    found, cfg = list_checkpoints(run_dir)
    if rule is not None:  # TRL saves its first checkpoint after save_steps: the papers never pick the start
        found = [c for c in found if c.optimizer_steps > 0]
        if not found:
            raise EvalError(f"--checkpoints {run_dir}: no checkpoint after RL started, which --selection {rule} picks "
                            "from; evaluate without --selection")
    chosen = choose(found, last, order)
    log(f"[dlrl-jax] {len(chosen)} of {len(found)} kept checkpoints of {run_dir} ({order} order): "
        + ", ".join(f"step {c.step}" for c in chosen))
    exporter = None  # built at the first checkpoint not yet evaluated (a rerun of a finished sweep loads nothing)
    accuracy: dict[int, dict[int, float]] = {}
    for c in chosen:
        folder = os.path.join(settings.out_dir, f"step_{c.step}")
        summary = _finished(folder, settings)
        if summary is None:
            exporter = exporter or _Exporter(run_dir, cfg, settings)
            model, adapter = exporter.write(c.step, folder)
            log(f"[dlrl-jax] checkpoint step {c.step} ({c.official_name}): "
                + (f"adapter {adapter} on {model}" if adapter else f"model {model}"))
            summary = evaluate_model(dataclasses.replace(settings, model=model, adapter=adapter, out_dir=folder,
                                                         tokenizer=exporter.tokenizer(model)), log=log, stop=stop)
            exporter.done(folder)
        accuracy[c.step] = {row["gen_length"]: row["accuracy"] for row in summary}
    result = report(accuracy, rule)
    with open(os.path.join(settings.out_dir, "checkpoint_sweep.json"), "w") as f:
        json.dump({"run_dir": os.path.abspath(run_dir), "order": order, "last": last,
                   "checkpoints": [dataclasses.asdict(c) | {"official_name": c.official_name} for c in chosen],
                   "report": result}, f, indent=2)
    return result


def _finished(folder: str, settings: EvalSettings) -> list[dict] | None:
    """The summary of a checkpoint's evaluation finished at every wanted length, else None. Its settings
    must be these (the weights were checked by their sha256 when it ran; a full fine-tune's model folder
    is gone since): other settings are refused by name, never mixed into one report."""
    try:
        with open(os.path.join(folder, "eval_summary.json")) as f:
            summary = json.load(f)
        with open(os.path.join(folder, "eval_meta.json")) as f:
            old = upgraded_meta(json.load(f))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise EvalError(f"{folder} holds an unreadable evaluation ({e}); delete that folder to evaluate the "
                        "checkpoint again") from None
    wanted = [r for r in summary if r["gen_length"] in settings.gen_lengths]
    if len(wanted) != len(set(settings.gen_lengths)):
        return None
    now = settings_meta(dataclasses.replace(settings, adapter=None))  # (the adapter is this checkpoint's own)
    # (a setting left unset, None, was resolved from the protocol, which is compared itself)
    changed = sorted(k for k in now if k not in ("adapter", "adapter_sha256", "tokenizer") and now[k] is not None
                     and old.get(k) != now[k])
    if changed:
        raise EvalError(f"{folder} holds an evaluation with different settings ({', '.join(changed)}); use another "
                        "--out folder to keep both, or delete it to start over")
    return wanted


class _Exporter:
    """Writes a checkpoint's policy where `dlrl-jax eval` reads it: the LoRA adapter (PEFT) to go onto
    the original base, or a full fine-tune's model folder. The model's structure and tokenizer are
    built once, as training built them; each checkpoint's parameters are read into it (the optimizer
    state and reference are not read)."""

    def __init__(self, run_dir: str, cfg: config_lib.Config, settings: EvalSettings):
        if settings.model:  # the base (LoRA) or the model the run started from, where it lies now
            cfg = config_lib.from_dict(config_lib.to_dict(cfg), [f"model.path={settings.model}"])
        elif cfg.model.path and not os.path.isdir(cfg.model.path):
            raise EvalError(f"the run's model.path {cfg.model.path} does not exist here (the base the checkpoints "
                            "were trained from); pass its folder with --model")
        self.run_dir, self.cfg, self.settings = run_dir, cfg, settings
        model, self._tokenizer = setup.build_model_and_tokenizer(cfg.model, cfg.seed)
        self.graphdef, params = nnx.split(model)
        self.dtypes = precision.storage_dtypes(params)
        self.lora = has_lora(params)
        partition = ParamPartition(params, trainable_mask(params)) if self.lora else None
        self.target = abstract_like(precision.master_params(params, partition))
        self.base = cfg.model.path  # LoRA: the original base (not a QLoRA run's quantized copy), as the papers
        if self.lora and not self.base:  # a preset base (random init from the seed): written once
            self.base = os.path.join(settings.out_dir, "base")
            if not os.path.isdir(self.base):
                self._save_model(adapter_off(params), self.base)

    def tokenizer(self, model_dir: str) -> str | None:
        """The tokenizer folder to evaluate with: the run's own (model.tokenizer) or the model folder's."""
        return self.settings.tokenizer or (self.cfg.model.tokenizer if model_dir == self.cfg.model.path else None)

    def _params(self, step: int):
        folder = os.path.join(self.run_dir, "checkpoints", str(step))
        verify_manifest(folder)  # a changed or missing file is named (ManifestMismatch); no manifest: unknown
        path = os.path.join(folder, "state")
        restored = ocp.PyTreeCheckpointer().restore(path, args=ocp.args.PyTreeRestore(
            item={"params": self.target}, partial_restore=True,
            restore_args=ocp.checkpoint_utils.construct_restore_args({"params": self.target})))
        return precision.cast_to(restored["params"], self.dtypes)  # as a run's export: the model's dtype

    def _save_model(self, params, folder: str) -> None:
        with replace_folder(folder) as tmp:
            save_pretrained(nnx.merge(self.graphdef, params), tmp)  # (LoRA merged)
            self._tokenizer.hf.save_pretrained(tmp)

    def write(self, step: int, folder: str) -> tuple[str, str | None]:
        """(model folder, adapter folder or None) of checkpoint `step`, written under `folder`."""
        os.makedirs(folder, exist_ok=True)
        if self.lora:
            adapter = os.path.join(folder, "adapter")
            if not os.path.isdir(adapter):  # (whole or not at all: a kill mid-write leaves no adapter folder)
                params = self._params(step)
                with replace_folder(adapter) as tmp:
                    save_adapter(nnx.merge(self.graphdef, params), tmp, base_model=os.path.abspath(self.base))
            return self.base, adapter
        model = os.path.join(folder, "model")
        if not os.path.isdir(model):  # (an interrupted evaluation resumes on the folder it wrote)
            self._save_model(self._params(step), model)
        return model, None

    def done(self, folder: str) -> None:
        """A finished full fine-tune's evaluation: its model folder goes (a model's size per checkpoint)."""
        if not self.lora:
            shutil.rmtree(os.path.join(folder, "model"), ignore_errors=True)


def format_report(task: str, rows: list[dict]) -> str:
    lines = [f"| {task} | checkpoints | last | best | mean | selected |", "|---|---|---|---|---|---|"]
    for r in rows:
        chosen = r.get("selected")
        lines.append(f"| gen {r['gen_length']} | {len(r['checkpoints'])} | {100 * r['last']['accuracy']:.1f}% "
                     f"(step {r['last']['step']}) | {100 * r['best']['accuracy']:.1f}% (step {r['best']['step']}) | "
                     f"{100 * r['mean']:.1f}% | "
                     + (f"{100 * chosen['accuracy']:.1f}% (step {chosen['step']}; {chosen['text']})" if chosen
                        else "none (--selection egspo|d1|espo names a paper's rule)") + " |")
    return "\n".join(lines)
