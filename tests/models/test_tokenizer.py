"""The tokenizer wrapper on a tokenizer folder built here with the `tokenizers` library (no download)."""

import json
import os

import numpy as np
import pytest

from dlrl_jax import models
from dlrl_jax.models.tokenizer import (CHAR_ALPHABET, CHAR_VOCAB_SIZE, Tokenizer, TokenizerError,
                                       write_char_tokenizer)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_char_tokenizer(str(tmp_path_factory.mktemp("tok")))


def test_char_ids_follow_the_documented_table(folder):
    tok = Tokenizer.from_pretrained(folder)
    assert (tok.pad_id, tok.mask_id, tok.eos_id) == (0, 1, 2)
    assert tok.vocab_size == CHAR_VOCAB_SIZE <= models.preset("tiny").vocab_size
    assert tok.encode("0") == [7] and tok.encode("9") == [16] and tok.encode("a") == [17]
    assert tok.encode("\n") == [7 + CHAR_ALPHABET.index("\n")]
    assert tok.encode("é") == [6]  # <unk>


def test_chat_template_and_left_padding(folder):
    tok = Tokenizer.from_pretrained(folder)
    assert tok.chat_prompt("12") == "<|user|>12<|assistant|>"
    ids, mask = tok.encode_batch(["12", "3 4"])
    np.testing.assert_array_equal(ids, [[0, 4, 8, 9, 5], [4, 10, 7 + CHAR_ALPHABET.index(" "), 11, 5]])
    np.testing.assert_array_equal(mask, [[False, True, True, True, True], [True] * 5])
    ids, _ = tok.encode_batch(["12"], chat=False, length=4)
    np.testing.assert_array_equal(ids, [[0, 0, 8, 9]])
    with pytest.raises(TokenizerError, match=r"prompts \[0\] are longer than the prompt length 1"):
        tok.encode_batch(["12"], chat=False, length=1)


def test_decode_drops_mask_and_pad_and_stops_at_eos(folder):
    tok = Tokenizer.from_pretrained(folder)
    assert tok.decode([8, 1, 9, 0, 2, 10]) == "12"
    assert tok.decode([8, 2, 10], stop_at_eos=False) == "13"


def test_ids_from_model_config_and_overrides(folder):
    cfg = models.preset("tiny", mask_token_id=100, eos_token_id=101, pad_token_id=102)
    tok = Tokenizer.from_pretrained(folder, cfg)
    assert (tok.mask_id, tok.eos_id, tok.pad_id) == (100, 101, 102)
    tok = Tokenizer.from_pretrained(folder, cfg, mask_id=5, pad_id=3)
    assert (tok.mask_id, tok.eos_id, tok.pad_id) == (5, 101, 3)
    with pytest.raises(TokenizerError, match="equals the mask id"):
        Tokenizer.from_pretrained(folder, mask_id=0)


def test_missing_folder_and_missing_mask_id(tmp_path, folder):
    with pytest.raises(TokenizerError, match="does not exist"):
        Tokenizer.from_pretrained(str(tmp_path / "none"))
    # A tokenizer that knows no mask token and no config: the error says to pass mask_id.
    data = json.load(open(os.path.join(folder, "tokenizer.json")))
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "<mask>"]
    del data["model"]["vocab"]["<mask>"]
    other = tmp_path / "nomask"
    other.mkdir()
    json.dump(data, open(other / "tokenizer.json", "w"))
    cfg = json.load(open(os.path.join(folder, "tokenizer_config.json")))
    cfg.pop("mask_token", None)
    cfg["added_tokens_decoder"] = {k: v for k, v in cfg.get("added_tokens_decoder", {}).items()
                                   if v["content"] != "<mask>"}
    json.dump(cfg, open(other / "tokenizer_config.json", "w"))
    with pytest.raises(TokenizerError, match="no mask_id .* pass mask_id=... explicitly"):
        Tokenizer.from_pretrained(str(other))
