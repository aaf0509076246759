"""`dlrl-jax`: train (RL with an optional SFT warm start), sft, sample, eval, rescore, export, plot."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys


def _train(args, algorithm: str | None = None) -> int:
    from dlrl_jax.app.preemption import StopFlag

    with StopFlag(args.command) as stop:  # first: a SIGTERM while JAX loads is a preemption too
        from dlrl_jax import config
        from dlrl_jax.app.plot import plot_run
        from dlrl_jax.app.train import train

        overrides = list(args.set or [])
        if args.resume:
            overrides.append("run.resume=true")
        if args.resume_or_start:
            overrides.append("run.resume=auto")
        if algorithm:
            overrides.append(f"algorithm.name={algorithm}")
        cfg = config.load(args.config, overrides)
        args.output, args.adapter = cfg.run.out_dir, cfg.model.adapter
        from dlrl_jax.parallel import distributed
        distributed.initialize()  # joins a multi-host job (coordinator from DLRL_*, SLURM or a TPU pod); else nothing
        train(cfg, log=print if distributed.is_lead_process() else (lambda *_: None), stop=stop)
    if distributed.is_lead_process():
        print(f"[dlrl-jax] curves: {plot_run(cfg.run.out_dir)}")
    return 0


def _sample(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dlrl_jax import checkpoints, models, rollout
    from dlrl_jax.config import SEED_MAX, ConfigError
    from dlrl_jax.models.tokenizer import Tokenizer, TokenizerError

    if not 0 <= args.seed <= SEED_MAX:
        raise ConfigError(f"--seed must be in [0, {SEED_MAX}], got {args.seed}")
    if not 0 <= args.temperature < float("inf"):  # (also refuses nan)
        raise ConfigError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    model = checkpoints.from_pretrained(args.model, dtype=args.dtype)
    if args.adapter:
        from dlrl_jax.checkpoints.peft import load_adapter
        model = load_adapter(model, args.adapter)
    graphdef, params = models.split(model)
    tokenizer = None
    try:
        tokenizer = Tokenizer.from_pretrained(args.tokenizer or args.model, model.cfg)
    except TokenizerError as e:
        if args.prompt is not None:
            raise ConfigError(f"--prompt needs a tokenizer ({e}); use --prompt-ids instead")
    mask_id = model.cfg.mask_token_id if model.cfg.mask_token_id is not None else tokenizer and tokenizer.mask_id
    if mask_id is None:
        raise ConfigError("the model config has no mask_token_id; add it to config.json")
    if args.prompt is not None:
        ids, mask = tokenizer.encode_batch([args.prompt], chat=not args.no_chat)
    else:
        try:
            row = [int(t) for t in args.prompt_ids.split()]
        except ValueError:
            raise ConfigError(f"--prompt-ids must be integers separated by spaces, got "
                             f"{args.prompt_ids[:80]!r}")
        vocab = model.cfg.vocab_size
        outside = [t for t in row if not 0 <= t < vocab]
        if outside or not row:  # (XLA would clamp them to a row of the embedding without a word)
            raise ConfigError(f"--prompt-ids must be token ids in [0, {vocab}) (the model's vocabulary), "
                              f"got {' '.join(map(str, outside[:5])) or 'none'}")
        ids, mask = np.asarray([row], np.int32), np.ones((1, len(row)), bool)
    schedule = rollout.resolve_schedule(args.schedule, model.cfg.family, args.block_length)
    settings = rollout.SamplerSettings(gen_length=args.gen_length, block_length=args.block_length or args.gen_length,
                                       steps=args.steps or args.gen_length, temperature=args.temperature,
                                       remasking=args.remasking, mask_id=int(mask_id), cache=args.cache,
                                       schedule=schedule, top_p=args.top_p, top_k=args.top_k, alg_temp=args.alg_temp,
                                       noise_dtype=args.noise_dtype, dream_mask_candidate=args.dream_mask_candidate)
    try:
        settings.validate()
    except rollout.SamplerSettingsError as e:
        raise ConfigError(str(e)) from None
    traj = rollout.generate(graphdef, params, jnp.asarray(ids), jnp.asarray(mask), jax.random.key(args.seed),
                            settings)
    completion = np.asarray(traj.completion).tolist()
    text = [tokenizer.decode(row) for row in completion] if tokenizer else [None]
    if args.json:
        print(json.dumps({"tokens": np.asarray(traj.tokens).tolist(), "completion_ids": completion, "text": text}))
    else:
        print(text[0] if text[0] is not None else " ".join(map(str, completion[0])))
    return 0


def _export(args) -> int:
    import os

    from dlrl_jax import checkpoints
    from dlrl_jax.config import ConfigError

    if not (args.model or args.run_dir):
        raise ConfigError("give a run folder or --model DIR")
    source = args.model or os.path.join(args.run_dir, "model")
    if args.adapter_only:  # the LoRA adapter alone, as a PEFT folder (checked against the model's config)
        from dlrl_jax.checkpoints import peft
        adapter = args.adapter or os.path.join(source, "adapter")
        if not os.path.isdir(adapter):
            raise ConfigError(f"{adapter} does not exist; a run writes it only when it trains LoRA "
                              "(model.lora_rank > 0 or model.adapter); export the merged model instead")
        from dlrl_jax.checkpoints import read_config
        cfg = read_config(source)
        settings, factors = peft.read_adapter(adapter, cfg)
        peft.write_adapter(args.out, cfg, settings, factors, dtype=args.dtype, base_model=os.path.abspath(source))
        print(f"[dlrl-jax] wrote the PEFT adapter {args.out}")
        return 0
    from dlrl_jax.folders.atomic import EXPORT_PATTERNS, replace_folder
    from dlrl_jax.models.tokenizer import TOKENIZER_FILES, copy_tokenizer_files

    model = checkpoints.from_pretrained(source, dtype=args.dtype)
    if args.adapter:  # a PEFT adapter merged into the base
        from dlrl_jax.checkpoints.peft import load_adapter
        model = load_adapter(model, args.adapter)
    # the weights and the source's tokenizer (eval and sample --prompt need it beside them) in one folder,
    # replaced whole and listed whole in its manifest, as a run's export; an earlier export's tokenizer
    # files are the export's own, never carried over beside another model's
    tmp = None
    try:
        with replace_folder(args.out, EXPORT_PATTERNS + TOKENIZER_FILES) as tmp:
            checkpoints.save_pretrained(model, tmp)
            copied = copy_tokenizer_files(source, tmp)
    except Exception as e:
        disk = _disk_error(e)
        if disk is None or tmp is None or not (disk.filename or "").startswith(tmp):
            raise
        raise OSError(disk.errno, disk.strerror,  # named where it was going, not by the temporary folder
                      os.path.abspath(args.out) + disk.filename[len(tmp):]) from e
    print(f"[dlrl-jax] wrote {args.out}" + ("" if copied else f" (no tokenizer files in {source} to copy: add the "
                                                              "model's own for eval or sample --prompt)"))
    return 0


# Task settings of `dlrl-jax eval` when no flag gives them: a model's evaluation takes these, a checkpoint
# sweep the run's own (task.*).
_EVAL_TASK_DEFAULTS = {"prompt_style": "chat", "reward_set": "dlrl", "prompt_recipe": "dlrl", "decode": "cut_eos"}


def _eval(args) -> int:
    from dlrl_jax.config import ConfigError
    from dlrl_jax.app.evaluation import evaluate_model, format_table
    from dlrl_jax.app.preemption import StopFlag

    try:
        lengths = tuple(int(x) for x in args.gen_lengths.split(","))
    except ValueError:
        raise ConfigError(f"--gen-lengths must be integers separated by commas, got {args.gen_lengths!r}")
    if args.checkpoints:
        return _eval_checkpoints(args, lengths)
    if not args.model or not args.task:
        raise ConfigError("dlrl-jax eval needs --model DIR and --task T (or --checkpoints RUN_DIR to evaluate a "
                          "training run's checkpoints)")
    for name, default in _EVAL_TASK_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    default_out = os.path.join(args.adapter or args.model, "eval")
    settings = _eval_settings(args, model=args.model, task=args.task, out_dir=args.out or default_out,
                              gen_lengths=lengths, data=args.data)
    with StopFlag(args.command) as stop:
        summary = evaluate_model(settings, stop=stop)
    print(format_table(args.task, summary))
    print(f"[dlrl-jax] per-example results in {settings.out_dir}")
    return 0


def _eval_settings(args, **given):
    from dlrl_jax.app.evaluation import EvalSettings

    return EvalSettings(**given, adapter=args.adapter, num_examples=args.num_examples,
                        prompt_style=args.prompt_style, block_length=args.block_length,
                        reward_set=args.reward_set, prompt_recipe=args.prompt_recipe, decode=args.decode,
                        steps_per_token=args.steps_per_token, temperature=args.temperature,
                        remasking=args.remasking, threshold=args.threshold, cache=args.cache,
                        schedule=args.schedule, top_p=args.top_p, top_k=args.top_k, alg_temp=args.alg_temp,
                        noise_dtype=args.noise_dtype, dream_mask_candidate=args.dream_mask_candidate,
                        batch_size=args.batch_size, tokenizer=args.tokenizer, dtype=args.dtype, seed=args.seed, progress=not args.no_progress,
                        samples=args.samples, protocol=args.protocol, data_dir=args.data_dir,
                        world_size=args.world_size, attend_pads=None if args.pads is None else args.pads == "attended")


def _eval_checkpoints(args, lengths) -> int:
    """`dlrl-jax eval --checkpoints RUN_DIR`: every kept checkpoint (or the last N), last / best / mean."""
    from dlrl_jax.config import ConfigError
    from dlrl_jax.app import checkpoint_sweep
    from dlrl_jax.app.preemption import StopFlag

    if args.adapter:
        raise ConfigError("--adapter does not go with --checkpoints: each checkpoint's adapter is written from it "
                          "(--model names the base)")
    rule = checkpoint_sweep.RULES.get(args.selection)
    _, cfg = checkpoint_sweep.list_checkpoints(args.checkpoints)
    ours = args.protocol == "dlrl"  # (a paper's protocol brings its own prompt, parser and test file)
    for name, default in _EVAL_TASK_DEFAULTS.items():  # the run's task settings, unless a flag says otherwise
        if getattr(args, name) is None:
            setattr(args, name, getattr(cfg.task, name) if ours else default)
    settings = _eval_settings(args, model=args.model or "", task=args.task or cfg.task.name,
                              out_dir=args.out or os.path.join(args.checkpoints, "eval_checkpoints"),
                              gen_lengths=lengths, data=args.data or (cfg.task.eval_file if ours else None))
    last = args.last if args.last is not None else (rule.last if rule else 0)
    order = args.checkpoint_order or (rule.order if rule else "numeric")
    with StopFlag(args.command) as stop:
        rows = checkpoint_sweep.sweep(args.checkpoints, settings, last=last, order=order, rule=args.selection,
                                      stop=stop)
    print(checkpoint_sweep.format_report(settings.task, rows))
    print(f"[dlrl-jax] per-checkpoint results in {settings.out_dir}/step_<iteration>; the report in "
          f"{settings.out_dir}/checkpoint_sweep.json")
    return 0


def _rescore(args) -> int:
    from dlrl_jax.protocols.rescore import format_report, rescore

    result = rescore(args.protocol, args.task, args.files, note=lambda line: print(line, file=sys.stderr))
    print(format_report(args.protocol, args.task, result))
    if args.json:
        print(json.dumps({"correct": result["correct"], "total": result["total"], "accuracy": result["accuracy"]}))
    return 0


def _plot(args) -> int:
    from dlrl_jax.app.plot import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0


def _add_cache_argument(p) -> None:
    p.add_argument("--cache", default="none", choices=("none", "prefix", "dual"),
                   help="Fast-dLLM's approximate KV cache (faster, not exact; see SamplerSettings)")


def _add_sampler_arguments(p, remasking: str | None = "low_confidence", mask_candidate: str | None = "exclude") -> None:
    """The candidate and order options of both samplers (see SamplerSettings)."""
    p.add_argument("--remasking", default=remasking,
                   choices=("low_confidence", "random", "origin", "maskgit_plus", "topk_margin", "entropy"),
                   help="which masked positions a step commits (Dream's alg: origin, maskgit_plus, topk_margin, "
                        "entropy)")
    p.add_argument("--schedule", default="auto", choices=("auto", "blocks", "dream"),
                   help="blocks: LLaDA's; dream: Dream's diffusion_generate (no blocks); auto: dream for a Dream "
                        "model unless --block-length is given")
    p.add_argument("--top-p", type=float, default=None, help="nucleus filter after the temperature (Dream's order)")
    p.add_argument("--top-k", type=int, default=None, help="top-k filter after top-p")
    p.add_argument("--alg-temp", type=float, default=None,
                   help="Dream: draw positions from softmax(confidence / alg-temp) instead of the top ones")
    p.add_argument("--noise-dtype", default="float32", choices=("float32", "bfloat16", "float64"),
                   help="Gumbel-max precision at temperature > 0; bfloat16 as the official EGSPO/d1/ESPO trainers")
    p.add_argument("--dream-mask-candidate", default=mask_candidate, choices=("exclude", "official"),
                   help="Dream's sampler: exclude (never draw the mask token) or official (as Dream's sample_tokens: "
                        "a drawn mask token leaves the position masked)"
                        + ("" if mask_candidate else "; default: the protocol's (dlrl exclude, the papers official)"))


def build_parser() -> argparse.ArgumentParser:
    # The choice lists come from the modules that hold them (none of these loads JAX). The sampler's
    # options stay written out below: its module loads JAX, which `dlrl-jax --help` should not wait for;
    # tests/test_cli_choices.py checks that they equal rollout.settings'.
    from dlrl_jax import tasks
    from dlrl_jax.protocols import eval_protocol, parsers
    from dlrl_jax.rewards.decoding import DECODE_MODES
    from dlrl_jax.tasks.prompts import PROMPT_RECIPES

    parser = argparse.ArgumentParser(prog="dlrl-jax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "RL post-training (EGSPO-SA by default) with an optional SFT warm start; "
                                      "with no --config, the embedded tiny 4x4 Sudoku demo"),
                            ("sft", "masked-diffusion SFT only")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", help="YAML config file (default: the embedded tiny Sudoku demo)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, repeatable")
        resume = p.add_mutually_exclusive_group()
        resume.add_argument("--resume", action="store_true",
                            help="continue from the newest checkpoint in RUN_DIR (same settings); none there: an error")
        resume.add_argument("--resume-or-start", action="store_true",
                            help="continue from the newest checkpoint if there is one, else start (run.resume=auto)")
    p = sub.add_parser("sample", help="sample completions with LLaDA's block sampler or Dream's own")
    p.add_argument("--model", required=True, help="Hugging Face model folder")
    p.add_argument("--adapter", help="a PEFT LoRA adapter folder to put onto the model")
    p.add_argument("--tokenizer", help="tokenizer folder (default: the model folder)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--prompt", help="prompt text (through the chat template unless --no-chat)")
    group.add_argument("--prompt-ids", help='prompt token ids, e.g. "1 2 3"')
    p.add_argument("--no-chat", action="store_true", help="encode --prompt as is, without the chat template")
    p.add_argument("--gen-length", type=int, default=64)
    p.add_argument("--block-length", type=int, default=None,
                   help="default: gen-length (one block); a Dream model without it uses Dream's sampler")
    p.add_argument("--steps", type=int, default=0, help="default: gen-length (one token per step)")
    p.add_argument("--temperature", type=float, default=0.0)
    _add_sampler_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    _add_cache_argument(p)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--json", action="store_true", help='print {"tokens", "completion_ids", "text"}')
    p = sub.add_parser("export", help="write a run's model (or any model folder) as HF safetensors")
    p.add_argument("run_dir", nargs="?", default="", help="a run folder of `dlrl-jax train`")
    p.add_argument("--model", help="a model folder instead of a run folder")
    p.add_argument("--adapter", help="a PEFT LoRA adapter folder: merged into the model (or, with --adapter-only, "
                                     "checked against it and rewritten)")
    p.add_argument("--adapter-only", action="store_true",
                   help="write only the LoRA adapter as a PEFT folder (default: RUN/model/adapter)")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p = sub.add_parser("eval", help="evaluate a model on a task at the papers' decoding settings (resumable)",
                       description="--protocol d1|egspo|espo evaluates as that paper's released evaluation "
                                   "computes its numbers: its eval prompt and <reasoning> prefill, its test file "
                                   "and subsample, bf16, its batch sizes with attended left pads, Dream's order, "
                                   "special tokens kept for its parser, its parser. These flags override a "
                                   "protocol's defaults: --data, --num-examples, --gen-lengths, --batch-size, "
                                   "--pads, --world-size, --dtype, --block-length, --steps-per-token, "
                                   "--temperature, --remasking, --schedule, --top-p, --top-k, --alg-temp, "
                                   "--noise-dtype, --dream-mask-candidate, --threshold, --cache, --seed; --prompt-style, --prompt-recipe, "
                                   "--reward-set and --decode belong to --protocol dlrl (the default: this "
                                   "project's evaluation, unchanged). Code: --protocol egspo --data "
                                   "hf:openai/openai_humaneval:test (or hf:google-research-datasets/mbpp:sanitized:"
                                   "test) is the closest to EGSPO's intended HumanEval/MBPP pass@1 (its release "
                                   "cannot run), tests run in the sandbox.")
    p.add_argument("--model", help="Hugging Face model folder (e.g. RUN_DIR/model); with --checkpoints: the base "
                                   "the run started from, where it lies now (default: the run's model.path)")
    p.add_argument("--adapter", help="a PEFT LoRA adapter folder to put onto --model (the base)")
    p.add_argument("--task", help="sudoku | countdown | gsm8k | math | code (with --checkpoints: the run's)")
    p.add_argument("--checkpoints", metavar="RUN_DIR",
                   help="evaluate the kept RL checkpoints of a training run; reports last, best and mean per length")
    p.add_argument("--last", type=int, default=None,
                   help="with --checkpoints: only the last N (default: all kept; --selection egspo: 20)")
    p.add_argument("--checkpoint-order", choices=("numeric", "lexicographic"), default=None,
                   help="how the last N are chosen: numeric (newest N, the default) or lexicographic (the greatest "
                        "official checkpoint-<step> names, as EGSPO's eval_checkpoints.py; --selection egspo's)")
    p.add_argument("--selection", choices=("egspo", "d1", "espo"), default=None,
                   help="name a paper's checkpoint selection in the report: egspo best of the last 20, d1 best, "
                        "espo the last")
    p.add_argument("--protocol", default="dlrl", choices=eval_protocol.EVAL_PROTOCOLS,
                   help="whose evaluation (default dlrl, this project's); recorded in eval_meta.json")
    p.add_argument("--data", help="records: JSONL/JSON/CSV/Parquet file or hf:NAME[:CONFIG]:SPLIT (default: the "
                                  "protocol's test set; dlrl: the generator, for sudoku and countdown)")
    p.add_argument("--data-dir", help="folder holding a paper protocol's test files (countdown_cd3_test.jsonl, "
                                      "4x4_test_sudoku.csv from d1's dataset/); default $DLRL_EVAL_DATA")
    p.add_argument("--gen-lengths", default="128,256,512", help="comma-separated, e.g. 128,256,512")
    p.add_argument("--out", help="results folder (default MODEL/eval); rerun to resume")
    p.add_argument("--num-examples", type=int, default=0, help="first N records (0: all; generator: 256)")
    p.add_argument("--prompt-style", default=None, choices=("chat", "plain"), help="default chat (--checkpoints: the run's)")
    p.add_argument("--reward-set", default=None, choices=tasks.REWARD_SETS,
                   help="whose reward functions score the completions (as task.reward_set)")
    p.add_argument("--prompt-recipe", default=None, choices=PROMPT_RECIPES,
                   help="whose prompt text (as task.prompt_recipe)")
    p.add_argument("--decode", default=None, choices=DECODE_MODES,
                   help="completion text for rewards (as task.decode)")
    p.add_argument("--block-length", type=int, default=None,
                   help="default 32 (the papers'); a Dream model without it uses Dream's sampler")
    p.add_argument("--steps-per-token", type=float, default=0.5, help="steps = gen length x this (papers: 0.5)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="decoding temperature; with --samples, the samples' (the accuracy stays greedy)")
    p.add_argument("--samples", type=int, default=0,
                   help="N > 0: also N completions per example at --temperature, and pass@k (k = 1, 2, 4, ..., N) "
                        "beside the greedy accuracy")
    _add_sampler_arguments(p, remasking=None, mask_candidate=None)
    p.add_argument("--threshold", type=float, default=None, help="confidence-threshold parallel decoding")
    _add_cache_argument(p)
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: the protocol's (dlrl 16; d1/egspo 8, 4 at length 512; espo 1)")
    p.add_argument("--pads", choices=("masked", "attended"), default=None,
                   help="left pads masked, or attended as the papers' models (called without a mask) attend them, "
                        "each batch padded to its own longest prompt; default: the protocol's (dlrl masked)")
    p.add_argument("--world-size", type=int, default=None,
                   help="with attended pads: the official processes whose sampler splits the rows into batches "
                        "(default: the protocol's, d1/egspo 8, espo 1)")
    p.add_argument("--tokenizer", help="tokenizer folder (default: the model folder)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16"),
                   help="default: the protocol's (dlrl float32, the papers bfloat16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("rescore", help="score saved generations with a paper's accuracy parser (d1's *.json "
                                       "generation files or eval_*.jsonl)")
    p.add_argument("--protocol", required=True, choices=parsers.PROTOCOLS,
                   help="whose parser: d1 / egspo (eval/parse_and_get_acc.py; egspo code: HumanEval/MBPP "
                        "pass@1 as eval/parser_json.py intends, in the sandbox), espo (countdown, sudoku), "
                        "dlrl (this project's accuracy)")
    p.add_argument("--task", required=True, choices=parsers.TASKS)
    p.add_argument("files", nargs="+", metavar="FILE", help="generation files of one setup, summed together")
    p.add_argument("--json", action="store_true",
                   help='last line: {"correct": int, "total": int, "accuracy": percent}')
    p = sub.add_parser("plot", help="draw reward, KL, entropy and selected-step curves of a run")
    p.add_argument("run_dir")
    p.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")
    return parser


# Exit statuses (README "Exit statuses"): 0 done, 1 a bug (traceback), these, and 75 preempted or a temporary
# failure (run the same command again).
EXIT_BAD_INPUT = 2
EXIT_HALTED = 3  # a run.halt_on guard held; a resumable checkpoint was saved
EXIT_IO = 74  # EX_IOERR (sysexits.h): out of space, an unwritable path


MESSAGE_CHARS = 1000


def one_line(error: BaseException) -> str:
    """An error message as one line of at most MESSAGE_CHARS characters, keeping its start (what and
    where) and its end (the fix): the last guard against a value quoted whole or a library's
    multi-line text."""
    text = " ".join(str(error).split())
    if len(text) <= MESSAGE_CHARS:
        return text
    half = MESSAGE_CHARS // 2
    return f"{text[:half]} [... {len(text) - 2 * half} characters ...] {text[-half:]}"


def _disk_error(error: BaseException) -> OSError | None:
    """The OSError (out of space, quota, read-only or unwritable path) behind `error`, if any; also
    a full disk that a library reports in its own exception type (Orbax/tensorstore: a ValueError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                                          errno.EPERM, errno.ENOTDIR, errno.EISDIR):
            return error
        text = str(error)
        for code in (errno.ENOSPC, errno.EDQUOT):
            if os.strerror(code) in text:
                path = re.search(r'(?:Failed writing|local file):? "([^"]+)"', text)
                return OSError(code, os.strerror(code), path.group(1) if path else None)
        error = error.__cause__ or error.__context__
    return None


def enable_compilation_cache() -> str | None:
    """JAX's persistent compilation cache, on by default for every `dlrl-jax` command, so that a second
    run of the same shapes loads its compiled programs instead of compiling them again (issue 19).
    An existing setting wins (JAX_COMPILATION_CACHE_DIR, or jax's config set by the caller);
    DLRL_JAX_COMPILATION_CACHE names another folder, or turns it off with 0 / off / false. Every
    program is cached, however quick its compilation (JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS and
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES still decide if set). Returns the folder in use, or None."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    choice = os.environ.get("DLRL_JAX_COMPILATION_CACHE", "")
    if choice.lower() in ("0", "off", "false", "no"):
        return None
    folder = os.path.expanduser(choice) if choice else os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dlrl_jax", "jax")
    jax.config.update("jax_compilation_cache_dir", folder)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


def _exit(status: int, argv) -> int:
    """`status` for a caller of main(); the command itself (argv None) ends here, skipping the
    interpreter's teardown: after a failure, background writers (Orbax's async checkpointing, its event
    loop) can print their own tracebacks ("Event loop is closed": 80-330 lines in issue 26's hostile
    round) around the one-line message. What was to be saved is saved and closed by then (the run's
    with-blocks)."""
    if argv is not None:
        return status
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    # transformers warns, on every tokenizer load, that `llada` is not one of its model types: noise
    # around the one line an error gets (TRANSFORMERS_VERBOSITY=warning brings it back)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    for name in ("config", "model", "adapter", "tokenizer", "data", "out", "run_dir"):  # "--out=~/x": no shell
        if isinstance(getattr(args, name, None), str):                                  # expands that "~"
            setattr(args, name, os.path.expanduser(getattr(args, name)))
    enable_compilation_cache()
    args.output = getattr(args, "out", None) or getattr(args, "run_dir", None)
    try:
        from dlrl_jax.config import ConfigError
        from dlrl_jax.data.readers import DataError
        from dlrl_jax.checkpoints import CheckpointError
        from dlrl_jax.models import ConfigError as ModelConfigError
        from dlrl_jax.models.tokenizer import TokenizerError
        from dlrl_jax.app.evaluation import EvalError
        from dlrl_jax.app.preemption import PREEMPTED_EXIT, Preempted, TemporaryFailure, received_name
        from dlrl_jax.app.run_lock import RunLockedError
        from dlrl_jax.app.health import Halted
        from dlrl_jax.protocols import ProtocolError
        from dlrl_jax.protocols.rescore import RescoreError

        handlers = {"train": _train, "sft": lambda a: _train(a, "sft"), "sample": _sample, "export": _export,
                    "eval": _eval, "rescore": _rescore, "plot": _plot}
        return handlers[args.command](args)
    except Preempted as e:  # (the messages say SIGTERM; Ctrl-C's SIGINT takes the same path)
        print(f"dlrl-jax {args.command}: preempted: {str(e).replace('SIGTERM', received_name())}", file=sys.stderr)
        return _exit(PREEMPTED_EXIT, argv)
    except TemporaryFailure as e:  # nothing changed; the same command again continues (a launcher requeues on 75)
        print(f"dlrl-jax {args.command}: temporary failure: {one_line(e)}", file=sys.stderr)
        return _exit(PREEMPTED_EXIT, argv)
    except Halted as e:  # a health guard held (run.halt_on): saved, stopped by name
        print(f"dlrl-jax {args.command}: {one_line(e)}", file=sys.stderr)
        return _exit(EXIT_HALTED, argv)
    except KeyboardInterrupt:  # Ctrl-C in a command with nothing to save (sample, export, plot)
        print(f"dlrl-jax {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return _exit(130, argv)
    except (ConfigError, CheckpointError, ModelConfigError, DataError, EvalError, TokenizerError, RunLockedError,
            ProtocolError, RescoreError, FileNotFoundError) as e:
        print(f"dlrl-jax {args.command}: error: {one_line(e)}", file=sys.stderr)
        return _exit(EXIT_BAD_INPUT, argv)
    except Exception as e:  # noqa: BLE001 (only disk errors are turned into one line; the rest re-raised)
        if type(e).__name__ == "SafetensorError" and getattr(args, "adapter", None):
            # (the model's own files are checked where they are read: the adapter's is the other safetensors)
            print(f"dlrl-jax {args.command}: error: {os.path.join(args.adapter, 'adapter_model.safetensors')} is "
                  f"truncated or corrupt ({one_line(e)}); download or export the adapter again", file=sys.stderr)
            return _exit(EXIT_BAD_INPUT, argv)
        if isinstance(e, OSError) and e.errno in (errno.ELOOP, errno.ENAMETOOLONG):  # a path that cannot be used
            print(f"dlrl-jax {args.command}: error: {e.filename or args.output}: {e.strerror}; choose another path",
                  file=sys.stderr)
            return _exit(EXIT_BAD_INPUT, argv)
        disk = _disk_error(e)
        if disk is None:
            raise
        where = disk.filename or args.output or "the output folder"
        what = "out of disk space" if disk.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot write there"
        print(f"dlrl-jax {args.command}: error: {what} at {where} ({disk.strerror}); free space or choose "
              f"another output folder (what was saved before is intact)", file=sys.stderr)
        return _exit(EXIT_IO, argv)


if __name__ == "__main__":
    sys.exit(main())
