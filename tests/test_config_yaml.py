"""Hostile YAML (issue 26, findings 3 and 4 and the YAML 1.1 scalars): a repeated section, an alias
bomb, a megabyte value, octal and base-60 integers, and "~" in paths. Each is refused in one line naming
the line or field, or read as YAML 1.2 reads it. Pure Python: milliseconds."""

import os
import time

import pytest

from dlrl_jax import cli, config


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_a_second_run_section_is_refused_naming_key_and_lines(tmp_path):
    path = _write(tmp_path, "run:\n  iterations: 5\nseed: 1\nrun:\n  eval_every: 1\n")
    with pytest.raises(config.ConfigError, match=r"c\.yaml line 4: the key 'run' appears a second time in the same "
                                                 r"section \(first on line 1\).*merge the two"):
        config.load(path)


def test_a_repeated_key_inside_a_section_is_refused(tmp_path):
    path = _write(tmp_path, "optim:\n  learning_rate: 1.0e-4\n  b1: 0.9\n  learning_rate: 3.0e-5\n")
    with pytest.raises(config.ConfigError, match=r"line 4: the key 'learning_rate' appears a second time.*line 2"):
        config.load(path)
    with pytest.raises(config.ConfigError, match=r"line 1: the key 'b1' appears a second time.*first on line 1"):
        config.load(_write(tmp_path, "optim: {b1: 0.9, b1: 0.5}\n"))
    # the same key in two different sections is two fields, not a repeat
    path = _write(tmp_path, "optim: {learning_rate: 1.0e-4, warmup_steps: 3}\nsft: {learning_rate: 1.0e-3, warmup_steps: 2}\n")
    cfg = config.load(path)
    assert (cfg.optim.warmup_steps, cfg.sft.warmup_steps) == (3, 2)


BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\nseed: *h\n")


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = _write(tmp_path, BOMB)  # 9^8 = 43 million strings once expanded
    start = time.perf_counter()
    with pytest.raises(config.ConfigError, match=r"c\.yaml line 2: the alias \*a is not accepted in a config"):
        config.load(path)
    with pytest.raises(config.ConfigError, match=r"--set seed: line 1: the alias \*a is not accepted"):
        config.load(None, ["seed=[&a [1, 1], *a, *a]"])
    assert time.perf_counter() - start < 1.0


def test_a_long_value_is_shown_cut_to_80_characters_keeping_both_ends(capsys, tmp_path):
    value = "9" * 200_000  # the hostile round sent 17 MB through --set and got it back as the "one line"
    argv = ["train", "--set", f"task.name=x{value}"]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and len(err) < 400, len(err)
    assert f"is 'x{'9' * 38}...{'9' * 36}'; choose one of" in err  # 40 characters of its repr, "...", the last 37
    # a missing file in a deep folder is named by its file name, however long the folder's path
    deep = tmp_path.joinpath(*["a_rather_long_folder_name"] * 6)
    with pytest.raises(config.ConfigError, match=r"'task.train_file': '/.*\.\.\..*/nope\.jsonl' does not exist$"):
        config.load(None, ["task.name=gsm8k", f"task.train_file={deep / 'nope.jsonl'}"])
    with pytest.raises(config.ConfigError, match=r"'seed' must be an integer, got a list of 1000 items$"):
        config.load(None, ["seed=[" + ",".join(["1"] * 1000) + "]"])
    with pytest.raises(config.ConfigError, match=r"--set run.iterations: line 1: an integer of 10000 digits; no "
                                                 r"config field takes one that large$"):
        config.load(None, ["run.iterations=" + "9" * 10_000])  # beyond the 4300 digits Python will read
    with pytest.raises(config.ConfigError, match=r"'run.iterations' must be at most 2147483647 in size, got "
                                                 r"100000000000000000000$"):
        config.load(None, ["run.iterations=" + str(10**20)])


@pytest.mark.parametrize("text, seed", [("010", 10), ("0o10", 8), ("0x1f", 31), ("+7", 7), ("0", 0)])
def test_integers_are_read_as_yaml_1_2_reads_them(tmp_path, text, seed):
    """YAML 1.1 (PyYAML's default) reads 010 as octal 8; YAML 1.2 as ten, with 0o for octal."""
    assert config.load(_write(tmp_path, f"seed: {text}\n")).seed == seed
    assert config.load(None, [f"seed={text}"]).seed == seed


@pytest.mark.parametrize("text", ["1:30", "1_000", "0b101"])
def test_yaml_1_1_only_integers_are_refused_naming_the_field(tmp_path, text):
    """1:30 was base 60 (90), 1_000 and 0b101 YAML 1.1 spellings; under 1.2 they are text, which an
    integer field refuses by name."""
    with pytest.raises(config.ConfigError, match=rf"config field 'run.iterations' must be an integer, got '{text}'"):
        config.load(_write(tmp_path, f"run: {{iterations: {text}}}\n"))


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("3.0e-5", 3e-5), (".5", 0.5), ("2", 2.0)])
def test_floats_are_read_as_yaml_1_2_reads_them(text, value):
    assert config.load(None, [f"optim.learning_rate={text}"]).optim.learning_rate == value
    with pytest.raises(config.ConfigError, match=r"'optim.learning_rate' must be a finite number, got inf"):
        config.load(None, ["optim.learning_rate=.inf"])


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    data = tmp_path / "train.jsonl"
    data.write_text('{"question": "1 + 1?", "answer": "2"}\n')
    cfg = config.load(None, ["run.out_dir=~/runs/a", "task.name=gsm8k", "task.train_file=~/train.jsonl"])
    assert cfg.run.out_dir == os.path.join(str(tmp_path), "runs", "a")
    assert cfg.task.train_file == str(data)


def test_a_symlink_loop_as_out_dir_is_one_line(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    with pytest.raises(config.ConfigError, match=r"config field 'run.out_dir': '.*/a/run' cannot be used \(Too many "
                                                 r"levels of symbolic links\); choose another path"):
        config.load(None, [f"run.out_dir={tmp_path / 'a' / 'run'}"])


def test_a_generated_data_set_beyond_memory_is_refused_before_generating():
    from dlrl_jax.tasks import build_task

    cfg = config.load(None, ["task.eval_size=2000000000"])
    start = time.perf_counter()
    with pytest.raises(config.ConfigError, match=r"task.train_size \+ task.eval_size is 2000004096; the sudoku "
                                                 r"generator makes at most 10000000 records"):
        build_task(cfg.task, cfg.seed)
    assert time.perf_counter() - start < 1.0


def test_a_lora_rank_beyond_every_projection_dimension_is_refused():
    """A huge rank (under int32) would allocate adapter factors until memory runs out; it cannot be used
    anyway: A B has rank at most min(in, out). The tiny preset's widest projection is its MLP (384)."""
    from dlrl_jax import models
    from dlrl_jax.models.lora import LoRASettings, add_lora

    abstract = models.abstract_model(models.preset("tiny"))
    with pytest.raises(models.ConfigError, match=r"model.lora_rank 100000000 exceeds every dimension of the "
                                                 r"adapted projections \(the widest is 384\)"):
        add_lora(abstract, LoRASettings(rank=100_000_000, alpha=16.0, targets=("q",)))
    assert add_lora(abstract, LoRASettings(rank=384, alpha=16.0, targets=("up",))).cfg.lora_rank == 384


@pytest.mark.parametrize("field", ["optim.warmup_steps", "sft.warmup_steps", "task.eval_size", "model.lora_rank"])
def test_integers_beyond_int32_are_refused_by_name(field):
    """optax's schedule takes the warmup as an int32 argument: 10**12 was an OverflowError traceback."""
    with pytest.raises(config.ConfigError, match=rf"config field '{field}' must be at most 2147483647 in size, got "
                                                 r"1000000000000$"):
        config.load(None, [f"{field}=1000000000000"])
