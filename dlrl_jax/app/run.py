"""`Run`: the host side of one training run, built from its configuration (the edge where the
YAML's sections become what the engine takes): the mesh, the model and tokenizer, the task and its
encoded prompt length, the run folder and metrics sink, and the settings the SFT and RL loops read."""

from __future__ import annotations

import json
import os

import jax

from dlrl_jax import models, parallel, rollout
from dlrl_jax.config import Config, ConfigError, to_dict
from dlrl_jax.data.pipeline import BatchStream
from dlrl_jax.models.lora import adapter_off, has_lora, trainable_mask
from dlrl_jax.parallel.transfer import is_lead_process, to_host
from dlrl_jax.rewards.decoding import completion_texts
from dlrl_jax.tasks import Task, build_task, read_records
from dlrl_jax.training import precision, setup
from dlrl_jax.training.algorithms import reference_model
from dlrl_jax.training.loop import LoopSettings
from dlrl_jax.training.state import Context
from dlrl_jax.training.update import ParamPartition


class Run:
    """The host side of one training run, made from its configuration: mesh, model split, tokenizer,
    task, prompt length, writer, `settings` (what the loops read: `training.loop.LoopSettings`) and
    `key`, the key the next phase starts from (key(seed); the SFT warm start hands its final key on
    through it). The loops (`training.loop.SFTLoop`, `RLLoop`) take it and never the configuration.

    `open_metrics(cfg, lead)`: opens the sink the loops write their metrics to (`write(phase, step,
    values)`, `close()`), called once the run's folder exists; the application opens a
    `dlrl_jax.app.metrics.MetricsWriter`. None: the metrics go nowhere."""

    def __init__(self, cfg: Config, open_metrics=None):
        self.cfg = cfg
        a = cfg.algorithm
        # first: a mesh that does not fit fails before any weights load
        self.mesh = setup.build_mesh(cfg.mesh, a.prompts_per_batch * a.group_size, cfg.sft.batch_size)
        model, self.tokenizer = setup.build_model_and_tokenizer(cfg.model, cfg.seed, self.mesh)
        self.mask_id = model.cfg.mask_token_id
        self.model_cfg = model.cfg
        self.model_family = model.cfg.family  # sampler.schedule auto: Dream's sampler for Dream models
        # LoRA dropout: update items then carry a "dropout_key" (raw key data) for the training forwards
        self.lora_dropout = model.cfg.lora_rank > 0 and model.cfg.lora_dropout > 0
        self.graphdef, params = models.split(model)
        self.params = parallel.place_params(params, self.mesh)
        self.param_dtypes = precision.storage_dtypes(self.params)  # frozen copies and exports use these
        self.task: Task = build_task(cfg.task, cfg.seed)
        records = self.task.train + self.task.eval
        positions = setup.max_positions(cfg.model.path, cfg.model.preset)
        if positions <= cfg.sampler.gen_length:
            raise ConfigError(f"sampler.gen_length {cfg.sampler.gen_length} leaves no room for a prompt in the "
                              f"{positions} positions the model holds; lower it")
        if cfg.task.max_prompt_length + cfg.sampler.gen_length > positions:
            raise ConfigError(f"task.max_prompt_length {cfg.task.max_prompt_length} + sampler.gen_length "
                              f"{cfg.sampler.gen_length} exceed the {positions} positions the model holds; lower them")
        self.prompt_length = setup.prompt_length(
            self.tokenizer, [self.task.prompt_text(r) for r in records], cfg.task.prompt_style,
            cfg.task.max_prompt_length, limit=positions - cfg.sampler.gen_length,
            where=lambda i: _where(cfg, records[i]), truncate=cfg.task.truncate_prompts, system=self.task.system,
            fix=f"shorten or drop that record (the model holds {positions} positions, sampler.gen_length "
                f"{cfg.sampler.gen_length} of them for the completion)")
        self.out_dir = cfg.run.out_dir
        os.makedirs(self.out_dir, exist_ok=True)
        self.lead = is_lead_process()  # process 0 writes files and shows progress
        if self.lead:
            with open(os.path.join(self.out_dir, "config.json"), "w") as f:
                json.dump(to_dict(cfg), f, indent=2)
        self.writer = open_metrics(cfg, self.lead) if open_metrics is not None else _NoMetrics()
        self.key = jax.random.key(cfg.seed)
        self.settings = LoopSettings(seed=cfg.seed, gen_length=cfg.sampler.gen_length,
                                     temperature=cfg.sampler.temperature, cache=cfg.sampler.cache,
                                     iterations=cfg.run.iterations, sft=cfg.sft, algorithm=cfg.algorithm,
                                     optim=cfg.optim)
        if cfg.sft.steps:
            self._check_sft_targets()

    def _check_sft_targets(self):
        """Before anything compiles: every training record has an SFT target that fits gen_length."""
        cfg = self.cfg
        targets = [self.task.target_text(r) for r in self.task.train]
        missing = sum(t is None for t in targets)
        if missing:
            raise ConfigError(f"sft.steps={cfg.sft.steps} but {missing} of {len(targets)} training records have no "
                              f"worked solution to learn from (task {cfg.task.name}); set sft.steps=0 or use data "
                              "with solutions")
        G = cfg.sampler.gen_length
        for record, target in zip(self.task.train, targets):
            # a target far longer in characters than G tokens is measured on a prefix, never encoded whole
            head = setup.PROBE_CHARS_PER_TOKEN * (G + 1)
            cut = len(target) > head
            n = len(self.tokenizer.encode(target[:head] if cut else target))
            if n > G + cut:  # (+1 when cut: the cut may split one token in two)
                raise ConfigError(f"{_where(cfg, record)}: its SFT target has {'over ' if cut else ''}{n - cut} "
                                  f"tokens, more than sampler.gen_length {G}; raise sampler.gen_length, drop the "
                                  "record or set sft.steps=0")

    def context(self, params) -> Context:
        """The immutable context of the jitted steps over `params` (the policy's tree)."""
        ref_graphdef, base_params = reference_model(self.graphdef, params)
        return Context(graphdef=self.graphdef, ref_graphdef=ref_graphdef, base_params=base_params, mesh=self.mesh,
                       algorithm=self.cfg.algorithm, seed=self.cfg.seed,
                       gen_length=self.cfg.sampler.gen_length, steps=self.cfg.sampler.steps,
                       mask_id=self.mask_id, eos_id=self.tokenizer.eos_id,
                       rows=self.cfg.algorithm.prompts_per_batch * self.cfg.algorithm.group_size,
                       lora_dropout=self.lora_dropout, partition=self.partition(params),
                       prompt_length=self.prompt_length, model_cfg=self.model_cfg)

    def sampler(self, temperature: float, record_greedy: bool = False, cache: str = "none") -> rollout.SamplerSettings:
        return setup.sampler_settings(self.cfg.sampler, self.mask_id, self.model_family, temperature, record_greedy, cache)

    def partition(self, params) -> ParamPartition | None:
        """With LoRA adapters, only they train; None means every parameter does."""
        return ParamPartition(params, trainable_mask(params)) if has_lora(params) else None

    def reference(self, params):
        """The reference policy: the base model (adapter off) with LoRA, else a frozen copy in the
        storage dtype (float32 master weights are cast back)."""
        return adapter_off(params) if has_lora(params) else precision.cast_to(params, self.param_dtypes)

    def batches(self, batch_size: int, seed: int) -> BatchStream:
        """The endless, seeded stream of training-record batches (grain). Every process reads the same
        global batch: the mesh splits the device work, and the host work (decoding, rewards) is
        repeated on each host, which keeps groups, advantages and metrics identical everywhere."""
        return BatchStream(self.task.train, batch_size, seed=seed)

    def encode(self, records):
        texts = [self.task.prompt_text(r) for r in records]
        ids, mask = setup.encode_prompts(self.tokenizer, texts, self.cfg.task.prompt_style, self.prompt_length,
                                         truncate=self.cfg.task.truncate_prompts, system=self.task.system)
        return self.place(ids), self.place(mask)

    def place(self, tree, batch_dim: int = 0):
        """Arrays of `tree` onto the mesh: rows split over (data, fsdp) where they divide, the rest
        replicated. On one device this is a plain transfer."""
        return parallel.shard_rows(tree, self.mesh, batch_dim)

    def decode(self, completion_ids) -> list[str]:
        """Completion texts for the rewards, decoded as `task.decode` says."""
        return completion_texts(self.tokenizer, to_host(completion_ids), self.cfg.task.decode)


class _NoMetrics:
    """The metrics sink of a run given none: writes nothing."""

    def write(self, phase: str, step: int, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


def _where(cfg: Config, record: dict) -> str:
    """The file and row a record came from (looked up again only to name a bad record)."""
    for field in ("task.train_file", "task.eval_file"):
        path = getattr(cfg.task, field.split(".")[1])
        if path:
            rows = read_records(path, cfg.task.name)
            if record in rows:
                return f"{field} {path} row {rows.index(record) + 1}"
    return f"a generated {cfg.task.name} record"
