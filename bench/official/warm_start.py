"""The shared SFT warm start of issue 27 item 2: this project's SFT on the official recipe's Sudoku prompts
and answer format, exported as a LLaDA folder both sides load, so that the official reward is neither 0
nor 1 when RL starts (bench/official/curves.py runs the curves from it).

What it does, in this project's venv:
1. Writes the puzzles both systems train and evaluate on, in d1's CSV schema ("Puzzle", "Solution"):
   OUT/train.csv (blanks drawn from [--min-blanks, --max-blanks]) and OUT/test.csv (d1's test difficulty,
   8 blanks), disjoint. d1's own training CSV (dataset/4x4_sudoku_unique_puzzles.csv) is not in the public
   snapshot; the harness reads these instead on both sides.
2. Runs `dlrl-jax sft` from the --model folder (bench/official/model_folder.py) on OUT/train.csv with d1's
   prompt (`task.prompt_recipe=d1`: d1 diffu-grpo/data_utils.py's SUDOKU_SYSTEM_PROMPT and user message,
   the folder's chat template) cut to its last --max-prompt-length tokens as the official trainers cut it
   (`prompt_ids[:, -max_prompt_length:]`; d1's and EGSPO's sudoku configs: 200), and the official answer
   format `<reasoning>\\n\\n</reasoning>\\n<answer>\\n{16 digits}\\n</answer>`. The targets are mixed
   (`task.sft_teacher=mixed`): a share of the puzzles teaches the row-order heuristic's grid instead of the
   solution (dlrl_jax/data/sudoku_teacher.py), so that samples still find what greedy decoding misses and
   the official reward (the fraction of blanks right) starts between 0 and 1.
3. Exports the SFT model as OUT/model: safetensors, the character tokenizer and chat template, LLaDA's
   runtime config fields and LLaDA's modeling code (--llada-code), loadable by
   `AutoModel.from_pretrained(OUT/model, trust_remote_code=True)` and by `dlrl_jax.models.from_pretrained`.

Usage (this project's venv; ~5 minutes on 2 cores at the defaults):
    python -m bench.official.warm_start --model /work/official_model --llada-code CODE --out /work/official_warm
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil

from bench.official.model_folder import copy_llada_code, llada_config, portable_tokenizer_class

TEST_BLANKS = 8  # every puzzle of d1's test set (dataset/4x4_test_sudoku.csv) has 8 blanks


def write_puzzles(out: str, *, seed: int, train_size: int, test_size: int, min_blanks: int,
                  max_blanks: int) -> tuple[str, str]:
    """OUT/train.csv and OUT/test.csv in d1's schema; no test puzzle is a training puzzle."""
    from types import SimpleNamespace

    from dlrl_jax.data.sudoku import generate_sudoku
    from dlrl_jax.tasks.sudoku import generate_training

    test = generate_sudoku(seed + 1, test_size, TEST_BLANKS)
    held_out = {r["puzzle"] for r in test}
    section = SimpleNamespace(min_blanks=min_blanks, max_blanks=max_blanks)
    train = [r for r in generate_training(seed, train_size + test_size, section) if r["puzzle"] not in held_out]
    train = train[:train_size]
    paths = []
    for name, rows in (("train.csv", train), ("test.csv", test)):
        path = os.path.join(out, name)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Puzzle", "Solution"])
            w.writerows([r["puzzle"], r["solution"]] for r in rows)
        paths.append(path)
    return paths[0], paths[1]


def sft_config(args, train_csv: str, test_csv: str, run_dir: str) -> dict:
    """The `dlrl-jax sft` config of the warm start (written beside it as OUT/sft.yaml)."""
    return {
        "seed": args.seed,
        "model": {"path": os.path.abspath(args.model), "dtype": "float32"},
        "task": {"name": "sudoku", "prompt_style": "chat", "prompt_recipe": args.prompt_recipe,
                 "reward_set": args.prompt_recipe,
                 "decode": "official", "max_prompt_length": args.max_prompt_length, "truncate_prompts": "left",
                 "train_file": train_csv, "eval_file": test_csv, "eval_size": args.test_size,
                 "sft_teacher": "mixed", "heuristic_fraction": args.heuristic_fraction},
        "sampler": {"gen_length": args.gen_length, "block_length": args.block_length, "steps": args.steps,
                    "temperature": 0.9, "remasking": "low_confidence"},
        "sft": {"steps": args.sft_steps, "batch_size": args.batch_size, "learning_rate": args.lr,
                "warmup_steps": 10},
        "run": {"out_dir": run_dir, "eval_samples": args.eval_samples},
    }


def export_folder(run_dir: str, out: str, llada_code: str, max_sequence_length: int) -> str:
    """OUT/model: the run's model as a LLaDA folder both sides load."""
    from dlrl_jax import cli
    from dlrl_jax.folders.manifest import write_manifest

    folder = os.path.join(out, "model")
    if cli.main(["export", run_dir, "--out", folder]) != 0:
        raise SystemExit(f"dlrl-jax export {run_dir} failed")
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        base = json.load(f)
    with open(path, "w") as f:
        json.dump(llada_config(base, max_sequence_length), f, indent=2)
    copy_llada_code(llada_code, folder)
    portable_tokenizer_class(folder)  # the official environments' older transformers read it
    write_manifest(folder)  # the export's SHA256SUMS, renewed over the rewritten config.json and the code
    return folder


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the random tiny LLaDA folder (bench/official/model_folder.py)")
    p.add_argument("--llada-code", required=True, help="folder with modeling_llada.py and configuration_llada.py")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=4096)
    p.add_argument("--test-size", type=int, default=256)
    p.add_argument("--min-blanks", type=int, default=4)
    p.add_argument("--max-blanks", type=int, default=10)
    p.add_argument("--max-prompt-length", type=int, default=200, help="d1's and EGSPO's sudoku setting")
    p.add_argument("--prompt-recipe", default="d1", choices=("d1", "espo"),
                   help="whose Sudoku prompt and reward: d1's (also EGSPO's) or ESPO's (its worked example); a "
                        "tiny character model trained on one does not answer the other (REPRODUCTION.md)")
    p.add_argument("--gen-length", type=int, default=64, help="the answer format is 62 characters")
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--steps", type=int, default=32, help="gen / 2, as the papers' 256 / 128")
    p.add_argument("--sft-steps", type=int, default=1200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--heuristic-fraction", type=float, default=0.6)
    p.add_argument("--eval-samples", type=int, default=8, help="samples per held-out puzzle (pass@k, per-sample)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    import yaml

    from dlrl_jax import cli

    os.makedirs(args.out, exist_ok=True)
    train_csv, test_csv = write_puzzles(args.out, seed=args.seed, train_size=args.train_size,
                                        test_size=args.test_size, min_blanks=args.min_blanks,
                                        max_blanks=args.max_blanks)
    run_dir = os.path.join(args.out, "sft_run")
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    config = os.path.join(args.out, "sft.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(sft_config(args, train_csv, test_csv, run_dir), f, sort_keys=False)
    if cli.main(["sft", "--config", config]) != 0:
        raise SystemExit(f"dlrl-jax sft --config {config} failed")
    folder = export_folder(run_dir, args.out, args.llada_code,
                           max_sequence_length=max(512, args.max_prompt_length + args.gen_length))
    print(f"warm start: {folder} (train {train_csv}, test {test_csv}, config {config})")


if __name__ == "__main__":
    main()
