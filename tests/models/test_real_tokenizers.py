"""The real tokenizer folders of LLaDA-8B-Instruct and Dream-v0-Instruct-7B (../shared/real_models):
special ids, chat templates rendered independently with jinja2, and the ids of the prompts the project
builds. Dream's folder names a remote-code class; it must load without running any code.

The LLaDA folder in shared/ has no tokenizer.json (too large to carry): its test adds a stand-in
byte-level tokenizer.json holding the real special tokens at their real ids, so what is checked is
that the real tokenizer_config.json (template, special tokens) is honoured."""

import json
import os
import shutil

import jinja2
import pytest

from dlrl_jax import models
from dlrl_jax.checkpoints import read_config
from dlrl_jax.tasks.prompts import prompt_text
from dlrl_jax.models.tokenizer import Tokenizer, TokenizerError

REAL = "/work/shared/real_models"
LLADA, DREAM = os.path.join(REAL, "LLaDA-8B-Instruct"), os.path.join(REAL, "Dream-v0-Instruct-7B")
pytestmark = pytest.mark.skipif(not os.path.isdir(REAL), reason="real model metadata not present")

QUESTION = prompt_text("gsm8k", {"question": "  Tom has 3 apples and buys 4 more. How many now?  "}, "chat")


def _render(folder: str, user_text: str) -> str:
    """The folder's chat template rendered with plain jinja2, as transformers' renderer sets it up
    (trim_blocks, lstrip_blocks, the special tokens as variables)."""
    with open(os.path.join(folder, "tokenizer_config.json")) as f:
        config = json.load(f)
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(config["chat_template"]).render(
        messages=[{"role": "user", "content": user_text}], add_generation_prompt=True,
        bos_token=config["bos_token"], eos_token=config["eos_token"])


def test_dream_loads_without_remote_code_with_its_ids_and_template():
    tok = Tokenizer.from_pretrained(DREAM, read_config(DREAM))
    assert (tok.mask_id, tok.eos_id, tok.pad_id) == (151666, 151643, 151643)
    assert tok.vocab_size == 151667  # 151643 BPE tokens + 24 added (added_tokens.json)
    assert type(tok.hf).__name__ == "Qwen2Tokenizer"
    vocab = tok.hf.get_vocab()
    assert (vocab["<|mask|>"], vocab["<|im_start|>"], vocab["<|im_end|>"], vocab["<|beginoftext|>"]) == (
        151666, 151644, 151645, 151665)
    # Qwen2.5's well-known ids: "hello world", and the default system turn of its chat template.
    assert tok.encode("hello world") == [14990, 1879]
    prompt = tok.chat_prompt("What is 2+2?")
    assert prompt == _render(DREAM, "What is 2+2?") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert tok.encode(prompt)[:11] == [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198]
    assert tok.encode(prompt)[-3:] == [151644, 77091, 198]  # <|im_start|>assistant\n


def test_dream_prompts_the_project_builds_equal_the_template():
    tok = Tokenizer.from_pretrained(DREAM, read_config(DREAM))
    ids, mask = tok.encode_batch([QUESTION], chat=True)
    want = tok.hf(_render(DREAM, QUESTION), add_special_tokens=False)["input_ids"]
    assert ids[0].tolist() == want and mask.all()
    # Dream's template keeps the content as is (no trim); decoding drops the special tokens and stops at EOS.
    assert tok.decode(want + [151643, 151643, 14990]) == (
        "system\nYou are a helpful assistant.\nuser\n" + QUESTION + "\nassistant\n")


def _llada_folder(tmp_path) -> str:
    """The real tokenizer_config.json + special_tokens_map.json with a stand-in tokenizer.json: byte-level
    BPE over the 256 byte symbols (no merges), the real 269 added tokens at their real ids."""
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import decoders, models as tok_models, pre_tokenizers

    folder = tmp_path / "llada_tok"
    folder.mkdir()
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(LLADA, name), folder / name)
    with open(os.path.join(LLADA, "tokenizer_config.json")) as f:
        added = json.load(f)["added_tokens_decoder"]
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({v["content"]: int(k) for k, v in added.items()})
    raw = RawTokenizer(tok_models.BPE(vocab=vocab, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    data = json.loads(raw.to_str())
    data["added_tokens"] = [dict(id=int(k), content=v["content"], single_word=v["single_word"], lstrip=v["lstrip"],
                                 rstrip=v["rstrip"], normalized=v["normalized"], special=v["special"])
                            for k, v in added.items()]
    (folder / "tokenizer.json").write_text(json.dumps(data))
    return str(folder)


def test_llada_tokenizer_config_is_honoured(tmp_path):
    folder = _llada_folder(tmp_path)
    tok = Tokenizer.from_pretrained(folder, read_config(LLADA))
    assert (tok.mask_id, tok.eos_id, tok.pad_id) == (126336, 126081, 126081)
    vocab = tok.hf.get_vocab()
    assert (vocab["<|startoftext|>"], vocab["<|eot_id|>"], vocab["<|mdm_mask|>"]) == (126080, 126348, 126336)
    assert tok.hf.bos_token_id == 126080
    # The template trims the content, opens with BOS and always ends with the assistant header.
    prompt = tok.chat_prompt(QUESTION)
    assert prompt == _render(LLADA, QUESTION)
    assert prompt.startswith("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nAnswer in this format:")
    assert prompt.endswith("in the answer.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert tok.chat_prompt("  hi  ") == ("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                                         "<|start_header_id|>assistant<|end_header_id|>\n\n")
    ids, _ = tok.encode_batch([QUESTION], chat=True)
    row = ids[0].tolist()
    assert row[:2] == [126080, 126346] and row.count(126080) == 1  # one BOS: the template's, none added
    newline = vocab["\u010a"]  # byte-level "\n"
    assert row[-14:-12] == [126348, 126346] and row[-3:] == [126347, newline, newline]
    # Without a tokenizer.json the error names the file to add.
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(os.path.join(LLADA, "tokenizer_config.json"), bare / "tokenizer_config.json")
    with pytest.raises(TokenizerError, match="tokenizer.json is missing"):
        Tokenizer.from_pretrained(str(bare))


def test_model_config_ids_of_the_real_configs():
    assert models.from_hf_dict(json.load(open(os.path.join(LLADA, "config.json")))).mask_token_id == 126336
    cfg = read_config(DREAM)
    assert (cfg.family, cfg.mask_token_id, cfg.eos_token_id, cfg.pad_token_id) == ("dream", 151666, 151643, 151643)
