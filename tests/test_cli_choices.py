"""The command line's choice lists are the library's: the sampler options cli.py writes out (its module
would load JAX for `dlrl-jax --help`) equal rollout.settings', and the rest are read from their modules,
so an option added there is accepted on the command line too."""

import argparse

from dlrl_jax import cli, tasks
from dlrl_jax.protocols import eval_protocol, parsers
from dlrl_jax.rewards.decoding import DECODE_MODES
from dlrl_jax.rollout import settings
from dlrl_jax.tasks.prompts import PROMPT_RECIPES


def _choices(command: str) -> dict[str, tuple]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.option_strings[0] if a.option_strings else a.dest: tuple(a.choices)
            for a in sub.choices[command]._actions if a.choices is not None}


def test_sampler_options_of_eval_and_sample_equal_the_samplers():
    expected = {"--cache": settings.CACHES, "--remasking": settings.REMASKING,
                "--schedule": ("auto",) + settings.SCHEDULES, "--noise-dtype": settings.NOISE_DTYPES,
                "--dream-mask-candidate": settings.DREAM_MASK_CANDIDATES}
    for command in ("eval", "sample"):
        found = _choices(command)
        for option, values in expected.items():
            assert found[option] == tuple(values), (command, option)


def test_task_protocol_and_scoring_options_come_from_their_modules():
    found = _choices("eval")
    assert found["--protocol"] == eval_protocol.EVAL_PROTOCOLS
    assert found["--reward-set"] == tasks.REWARD_SETS
    assert found["--prompt-recipe"] == PROMPT_RECIPES
    assert found["--decode"] == DECODE_MODES
    rescore = _choices("rescore")
    assert rescore["--protocol"] == parsers.PROTOCOLS and rescore["--task"] == parsers.TASKS
