"""task.truncate_prompts: "left" keeps each prompt's last max_prompt_length tokens, as TRL's
GRPOTrainer (inherited by the official EGSPO, ESPO and d1 trainers) does with
`prompt_ids[:, -max_prompt_length:]` after left-padding the batch to its longest prompt; "refuse" (the
default) stops with the field's name. Checked on hand-worked ids of the character tokenizer
(id = 7 + position in CHAR_ALPHABET; pad 0, <|user|> 4, <|assistant|> 5)."""

import numpy as np
import pytest

from dlrl_jax import config
from dlrl_jax.config import ConfigError
from dlrl_jax.models.tokenizer import CHAR_ALPHABET, Tokenizer, TokenizerError, write_char_tokenizer
from dlrl_jax.training import setup


def _ids(text):
    return [7 + CHAR_ALPHABET.index(c) for c in text]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return Tokenizer.from_pretrained(write_char_tokenizer(str(tmp_path_factory.mktemp("tok"))))


def test_left_truncation_keeps_the_last_tokens(tok):
    ids, mask = setup.encode_prompts(tok, ["abcdef", "xy"], "plain", 4, "left")
    np.testing.assert_array_equal(ids, [_ids("cdef"), [0, 0] + _ids("xy")])
    np.testing.assert_array_equal(mask, [[True] * 4, [False, False, True, True]])
    # chat: the template's <|user|> is what goes first; <|assistant|> (the last token) stays
    ids, mask = setup.encode_prompts(tok, ["abcdef"], "chat", 3, "left")
    np.testing.assert_array_equal(ids, [_ids("ef") + [5]])
    # a batch shorter than the width is left-padded to it (one compiled shape)
    ids, mask = setup.encode_prompts(tok, ["ab"], "plain", 5, "left")
    np.testing.assert_array_equal(ids, [[0, 0, 0] + _ids("ab")])
    np.testing.assert_array_equal(mask, [[False, False, False, True, True]])


def test_refuse_is_the_default_and_names_the_fields(tok):
    with pytest.raises(TokenizerError, match="longer than the prompt length 4"):
        setup.encode_prompts(tok, ["abcdef"], "plain", 4)
    with pytest.raises(ConfigError, match=r"6 tokens, more than task.max_prompt_length 4.*task.truncate_prompts=left"):
        setup.prompt_length(tok, ["abcdef", "xy"], "plain", 4)
    assert setup.prompt_length(tok, ["abcdef", "xy"], "plain", 4, truncate="left") == 4
    assert setup.prompt_length(tok, ["abcdef", "xy"], "plain", 0, truncate="left") == 6  # 0: the longest prompt
    assert config.load(None).task.truncate_prompts == "refuse"
    with pytest.raises(ConfigError, match=r"'task.truncate_prompts' is 'right'; choose one of \['refuse', 'left'\]"):
        config.load(None, ["task.truncate_prompts=right"])
