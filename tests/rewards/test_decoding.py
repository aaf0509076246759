"""Completion text for rewards: "official" = batch_decode(ids, skip_special_tokens=True) as the papers'
trainers do (special tokens vanish, text after an EOS stays); "cut_eos" = up to the first EOS.
Checked on the embedded character tokenizer and on Dream's real BPE files (Qwen2 tokenizer from
vocab.json + merges.txt, no remote code), with the expected texts typed in."""

import os

import numpy as np
import pytest

from dlrl_jax import config, tasks
from dlrl_jax.config import ConfigError
from dlrl_jax.models.tokenizer import Tokenizer, write_char_tokenizer
from dlrl_jax.rewards.decoding import completion_texts

DREAM = "/work/shared/real_models/Dream-v0-Instruct-7B"
ANSWER = "<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\n"


@pytest.fixture(scope="module")
def char_tokenizer(tmp_path_factory):
    path = write_char_tokenizer(str(tmp_path_factory.mktemp("char")))
    return Tokenizer.from_pretrained(path, mask_id=1, eos_id=2, pad_id=0)


def test_char_tokenizer_modes(char_tokenizer):
    t = char_tokenizer
    # ids: <pad> 0, <mask> 1, <eos> 2, <bos> 3, <|user|> 4, <|assistant|> 5; characters from 7
    row = t.encode(ANSWER) + [2] + t.encode("junk") + [2, 0, 0]
    other = [4] + t.encode("7") + [1, 5, 2, 2]  # a chat marker and a leftover mask: both special
    ids = np.asarray([row, other + [0] * (len(row) - len(other))], np.int32)
    assert completion_texts(t, ids, "official") == [ANSWER + "junk", "7"]
    assert completion_texts(t, ids, "cut_eos") == [ANSWER, "7"]
    # what it changes for d1's GSM8K reward: 3.5 as cut; with the tail, strict fails and the xml count
    # loses .001 per character after the closing tags: 2 + .5 + (.5 - .004 - .004)
    texts = completion_texts(t, ids[:1], "official") + completion_texts(t, ids[:1], "cut_eos")
    np.testing.assert_allclose(tasks.score("gsm8k", texts, [{"answer": "72"}] * 2, reward_set="d1"),
                               [2.992, 3.5], atol=1e-6)


@pytest.mark.skipif(not os.path.isfile(os.path.join(DREAM, "vocab.json")), reason="Dream tokenizer files absent")
def test_dream_tokenizer_modes():
    from transformers import Qwen2TokenizerFast

    hf = Qwen2TokenizerFast.from_pretrained(DREAM)
    t = Tokenizer(hf, mask_id=151666, eos_id=151643, pad_id=151643)
    text_ids = hf("<answer>\n72\n</answer>", add_special_tokens=False)["input_ids"]
    tail_ids = hf(" and more", add_special_tokens=False)["input_ids"]
    # <|im_end|> 151645 and <|endoftext|> 151643 are special; <tool_call> 151657 is an added token
    # that is not special, so it stays in the text
    row = text_ids + [151645, 151643] + tail_ids + [151657, 151643, 151643]
    assert completion_texts(t, [row], "official") == ["<answer>\n72\n</answer> and more<tool_call>"]
    assert completion_texts(t, [row], "cut_eos") == ["<answer>\n72\n</answer>"]


def test_unknown_mode_and_config_field(char_tokenizer):
    with pytest.raises(ValueError, match="unknown decode mode 'all'; use one of cut_eos, official"):
        completion_texts(char_tokenizer, [[7]], "all")
    assert config.load(None, []).task.decode == "cut_eos"
    assert config.load(None, ["task.decode=official"]).task.decode == "official"
    with pytest.raises(ConfigError, match="task.decode"):
        config.load(None, ["task.decode=all"])
