"""Seconds per RL iteration, phase by phase, of an official trainer's real code (issue 27 item 5): the
trainer that bench/official/run_{egspo,espo,d1}.py builds, with the same run-time patches, trained for
W warm-up + N timed iterations, its methods wrapped by clocks (time.perf_counter around the real calls;
what they return is unchanged):

  rollout    the trainer's `generate` (every call of the iteration)
  reward     the reward function (every call: EGSPO-SA also scores its K greedy completions)
  reference  the rest of `_generate_and_score_completions`: the old and reference log-probs / ELBOs,
             tokenising, advantages
  update     the rest of the iteration, from the end of `_generate_and_score_completions` to the start of
             the next one (or the last optimizer step's end): every micro-step's loss, backward, the
             optimizer steps and the Trainer's own bookkeeping

An iteration is one rollout and the optimizer steps on it (EGSPO: mu x K / columns, ESPO and d1: mu).
Torch runs on every core of the machine (torch.set_num_threads(os.cpu_count())) unless --threads says. The prompt is the
chat-templated user message padded to exactly --prompt-length tokens. Prints one JSON line prefixed
`SPEED_JSON ` (bench/official/speed.py reads it).

Usage (the trainer's venv, from bench/official or with it on the path):
    python bench/official/time_official.py --trainer egspo --prompt-length 16 --warmup 1 --iterations 5 \\
        -- --egspo-repo CLONE --model FOLDER --out /dev/null --group 8 --lambda1 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

PHASES = ("rollout", "reward", "reference", "update")
# a prompt's filler: the runners' Sudoku prompt, repeated (its characters are all in the character tokenizer)
FILLER = "Fill the 4x4 sudoku: 1.3. .2.4 3.1. .4.2 "


def iterations_from_events(events: list[tuple[str, float, float]], end: float) -> list[dict]:
    """Per-iteration phase seconds from the clocks' (phase, start, stop) events, phase in {"score",
    "rollout", "reward"}: every "score" event (`_generate_and_score_completions`) starts an iteration,
    which lasts until the next one starts (the last one until `end`); rollout and reward events count in
    the iteration whose score event holds them."""
    scores = sorted((s, e) for p, s, e in events if p == "score")
    if not scores:
        raise ValueError("no call of _generate_and_score_completions was timed: the trainer ran no iteration")
    out = []
    for i, (start, stop) in enumerate(scores):
        until = scores[i + 1][0] if i + 1 < len(scores) else end
        inside = {p: sum(e - s for q, s, e in events if q == p and start <= s and e <= stop)
                  for p in ("rollout", "reward")}
        out.append({"rollout": inside["rollout"], "reward": inside["reward"],
                    "reference": (stop - start) - inside["rollout"] - inside["reward"],
                    "update": until - stop, "iteration": until - start})
    return out


def padded_prompt(tokenizer, length: int) -> str:
    """A user message whose chat-templated prompt (with the generation prompt) is exactly `length`
    tokens; an error names the template's own length when it is longer than that."""
    def count(content):
        text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                             add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    overhead = count("")
    if overhead > length:
        raise SystemExit(f"--prompt-length {length}: the chat template alone is {overhead} tokens; ask for more")
    content = (FILLER * (length // len(FILLER) + 1))[:length - overhead]
    if count(content) != length:
        raise SystemExit(f"--prompt-length {length}: the padded prompt is {count(content)} tokens (the tokenizer is "
                         "not one token a character); pass a character-tokenizer model folder")
    return content


def steps_per_iteration(trainer_name: str, args) -> int:
    return args.mu * args.k // args.columns if trainer_name == "egspo" else args.mu


def build(trainer_name: str, args, work_dir: str):
    """The runner's trainer (no recording hooks) with the run-time patches its PATCHES list."""
    if trainer_name == "egspo":
        import run_egspo
        args.work_dir = work_dir
        trainer, _ = run_egspo.build_trainer(args, None)
        return trainer
    if trainer_name == "espo":
        import run_espo
        trainer, _, _, mask_id = run_espo.build_trainer(args, None, work_dir)
        cls = type(trainer)
        generate = cls.generate

        def generate_with_mask_id(self, *a, **k):  # run_espo PATCHES "mask id"
            return generate(self, *a, **dict(k, mask_id=mask_id))
        cls.generate = generate_with_mask_id
        return trainer
    import run_d1
    trainer, _, _, _ = run_d1.build_trainer(args, None, work_dir)
    cls = type(trainer)
    forward_process = cls.forward_process

    def forward_process_int_seed(self, batch, prompt_index, mask_id, seed=None):  # run_d1 PATCHES "seed type"
        return forward_process(self, batch, prompt_index, mask_id, seed=None if seed is None else int(seed))
    cls.forward_process = forward_process_int_seed
    return trainer


def clock(trainer, events: list):
    """Wraps generate, _generate_and_score_completions and the reward function with clocks, and adds a
    callback that stamps the end of every optimizer step; returns the list of those stamps."""
    from transformers import TrainerCallback

    cls = type(trainer)

    def timed(fn, phase):
        def wrapper(*a, **k):
            start = time.perf_counter()
            out = fn(*a, **k)
            events.append((phase, start, time.perf_counter()))
            return out
        wrapper.__name__ = getattr(fn, "__name__", phase)
        return wrapper
    cls.generate = timed(cls.generate, "rollout")
    cls._generate_and_score_completions = timed(cls._generate_and_score_completions, "score")
    trainer.reward_funcs = [timed(f, "reward") for f in trainer.reward_funcs]
    stamps = []

    class StepEnd(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            stamps.append(time.perf_counter())
    trainer.add_callback(StepEnd())
    return stamps


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ours, runner_argv = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trainer", required=True, choices=("egspo", "espo", "d1"))
    p.add_argument("--prompt-length", type=int, required=True)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0: every core (os.cpu_count())")
    opts = p.parse_args(ours)
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(opts.threads or os.cpu_count())
    runner = __import__(f"run_{opts.trainer}")
    args = runner.parse(runner_argv)
    args.prompt = padded_prompt(AutoTokenizer.from_pretrained(args.model, local_files_only=True), opts.prompt_length)
    events = []
    with tempfile.TemporaryDirectory() as work_dir:
        trainer = build(opts.trainer, args, work_dir)
        per_iteration = steps_per_iteration(opts.trainer, args)
        trainer.args.max_steps = (opts.warmup + opts.iterations) * per_iteration
        stamps = clock(trainer, events)
        trainer.train()
    rows = iterations_from_events(events, stamps[-1])
    import transformers
    import trl
    print("SPEED_JSON " + json.dumps({
        "system": "official", "trainer": opts.trainer, "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "optimizer_steps_per_iteration": per_iteration, "warmup": opts.warmup, "iterations": rows,
        "settings": {k: v for k, v in vars(args).items() if k not in ("work_dir", "prompt")}}))


if __name__ == "__main__":
    main()
