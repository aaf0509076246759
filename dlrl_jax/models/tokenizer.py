"""Tokenizers: a thin wrapper over transformers' tokenizers (local folders only, no remote code), and
the character-level tokenizer of the embedded tiny models, built with the `tokenizers` library."""

from __future__ import annotations

import json
import os
import string
from typing import Sequence

import numpy as np

from dlrl_jax.models import families
from dlrl_jax.models.config import ModelConfig

# The tokenizer conventions of each family (its mask token's text, the built-in class that reads a
# remote-code tokenizer's files) are its record's, dlrl_jax/models/families/.
CHAR_SPECIALS = ("<pad>", "<mask>", "<eos>", "<bos>", "<|user|>", "<|assistant|>", "<unk>")
CHAR_ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n"
CHAR_CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}<eos>"
    "{% else %}{{ m['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}")


# A tokenizer's files in a Hugging Face folder (a remote-code class's module too, for PyTorch users of
# the folder): what an export copies beside the weights.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json", "tokenizer.model",
                   "tokenization_*.py")


def copy_tokenizer_files(source: str, target: str) -> list[str]:
    """Makes the tokenizer files of folder `target` those of `source` (copied, each written whole; the
    target's others, of another model, removed); returns their names."""
    import fnmatch
    import shutil

    def tokenizer_files(folder):
        return sorted(n for n in os.listdir(folder) if any(fnmatch.fnmatch(n, p) for p in TOKENIZER_FILES)
                      and os.path.isfile(os.path.join(folder, n)))

    names = tokenizer_files(source)
    if os.path.samefile(source, target):
        return names
    for name in names:
        shutil.copyfile(os.path.join(source, name), os.path.join(target, f".{name}.tmp"))
        os.replace(os.path.join(target, f".{name}.tmp"), os.path.join(target, name))
    for name in set(tokenizer_files(target)) - set(names):
        os.remove(os.path.join(target, name))
    return names


class TokenizerError(ValueError):
    """The tokenizer folder or its special ids are unusable; the message says what to set."""


class Tokenizer:
    """Chat-templated encoding to left-padded id batches, and decoding, with explicit special ids.

    mask/eos/pad ids come from the overrides, else the model config, else the tokenizer itself.
    """

    def __init__(self, hf_tokenizer, *, mask_id: int, eos_id: int, pad_id: int):
        if pad_id == mask_id:
            raise TokenizerError(f"pad id {pad_id} equals the mask id; left padding must not look like a mask")
        self.hf = hf_tokenizer
        self.mask_id, self.eos_id, self.pad_id = int(mask_id), int(eos_id), int(pad_id)

    @classmethod
    def from_pretrained(cls, path: str, model_config: ModelConfig | None = None, *, mask_id: int | None = None,
                        eos_id: int | None = None, pad_id: int | None = None) -> "Tokenizer":
        if not os.path.isdir(path):
            raise TokenizerError(f"tokenizer folder {path!r} does not exist")
        hf = _load_hf_tokenizer(path)
        cfg = model_config
        mask_id = _first(mask_id, cfg and cfg.mask_token_id, _known_mask_id(hf))
        eos_id = _first(eos_id, cfg and cfg.eos_token_id, hf.eos_token_id)
        pad_id = _first(pad_id, cfg and cfg.pad_token_id, hf.pad_token_id, eos_id)
        for name, value in (("mask_id", mask_id), ("eos_id", eos_id)):
            if value is None:
                raise TokenizerError(f"{path}: no {name} in the model config or tokenizer; pass {name}=... explicitly")
        if cfg is not None:
            _check_fits(path, hf, cfg.vocab_size, mask_id=mask_id, eos_id=eos_id, pad_id=pad_id)
        return cls(hf, mask_id=mask_id, eos_id=eos_id, pad_id=pad_id)

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user_text}]
        if not getattr(self.hf, "chat_template", None):
            raise TokenizerError("this tokenizer has no chat_template; pass raw prompt ids or add a template")
        return self.hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Ids of `text`; `add_special_tokens`: what the tokenizer's post-processor adds (a BOS, for
        some), as a plain `tokenizer(text)` call does -- off for text that went through a chat
        template, which holds its special tokens already."""
        return list(self.hf(text, add_special_tokens=add_special_tokens)["input_ids"])

    def encode_batch(self, texts: Sequence[str], *, chat: bool = True, system: str | None = None,
                     length: int | None = None, add_special_tokens: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded ids [B, P] int32 and the real-token mask [B, P] bool.

        `length` fixes P (so batches share one compiled shape); a prompt longer than it is an error,
        never silently cut."""
        rows = [self.encode(self.chat_prompt(t, system) if chat else t, add_special_tokens) for t in texts]
        width = length or max(len(r) for r in rows)
        too_long = [i for i, r in enumerate(rows) if len(r) > width]
        if too_long:
            raise TokenizerError(f"prompts {too_long} are longer than the prompt length {width} tokens; "
                                 "raise max_prompt_length or shorten them")
        ids = np.full((len(rows), width), self.pad_id, np.int32)
        mask = np.zeros((len(rows), width), bool)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r):] = r
                mask[i, width - len(r):] = True
        return ids, mask

    def decode(self, ids: Sequence[int], *, stop_at_eos: bool = True) -> str:
        """Text of `ids`, dropping mask and pad ids, cut at the first EOS when asked."""
        ids = [int(i) for i in ids]
        if stop_at_eos and self.eos_id in ids:
            ids = ids[:ids.index(self.eos_id)]
        ids = [i for i in ids if i not in (self.mask_id, self.pad_id)]
        return self.hf.decode(ids, skip_special_tokens=True)


def _load_hf_tokenizer(path: str):
    """transformers' tokenizer for a local folder, never running code from it. A folder whose
    tokenizer_config names a remote-code class we know loads with its built-in equivalent."""
    import transformers

    config_path = os.path.join(path, "tokenizer_config.json")
    config = {}
    if os.path.isfile(config_path):
        try:
            with open(config_path) as f:
                config = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TokenizerError(f"{config_path} is not valid JSON ({e})") from e
    builtin = families.remote_tokenizers().get(str(config.get("tokenizer_class")))
    if config.get("tokenizer_class") == "PreTrainedTokenizerFast" and not os.path.isfile(
            os.path.join(path, "tokenizer.json")):
        raise TokenizerError(f"{path}: tokenizer_config.json names PreTrainedTokenizerFast but tokenizer.json "
                             "is missing; copy tokenizer.json from the model's repository into the folder")
    try:
        if builtin:
            return getattr(transformers, builtin).from_pretrained(path, local_files_only=True)
        return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise TokenizerError(f"cannot load a tokenizer from {path}: {e}") from e


def _check_fits(path: str, hf, vocab_size: int, **special_ids: int) -> None:
    """Every id the tokenizer can produce must index the model's embedding: a larger tokenizer (one of
    another model) would feed out-of-range ids, which XLA clamps to the last row without a word and the
    run reports a plausible 0% (issue 26). A smaller one is usual (embeddings padded to a multiple)."""
    size = len(hf)  # the base vocabulary and every added token
    if size > vocab_size:
        raise TokenizerError(f"{path}: the tokenizer has {size} tokens but the model's vocabulary has {vocab_size} "
                             "(config.json vocab_size): it belongs to another model; use the model's own tokenizer")
    for name, value in special_ids.items():
        if value is not None and not 0 <= value < vocab_size:
            raise TokenizerError(f"{path}: {name} {value} is outside the model's vocabulary [0, {vocab_size}); set "
                                 "the right id in config.json")


def _first(*values):
    return next((v for v in values if v is not None), None)


def _known_mask_id(hf) -> int | None:
    """The id of a mask token known by its text: a family's (the instruct models' config.json also
    carries mask_token_id), then the character tokenizer's <mask>."""
    vocab = hf.get_vocab()
    return next((vocab[t] for t in (*families.mask_tokens(), CHAR_SPECIALS[1]) if t in vocab), None)


def write_char_tokenizer(path: str) -> str:
    """Writes the embedded character-level tokenizer (HF fast-tokenizer folder) to `path`.

    Ids: <pad> 0, <mask> 1, <eos> 2, <bos> 3, <|user|> 4, <|assistant|> 5, <unk> 6, then one id per
    character of CHAR_ALPHABET (printable ASCII and newline); any other character encodes as <unk>."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as RawTokenizer
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(CHAR_SPECIALS)}
    for ch in CHAR_ALPHABET:
        vocab[ch] = len(vocab)
    raw = RawTokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    raw.decoder = decoders.Fuse()
    raw.add_special_tokens(list(CHAR_SPECIALS))
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>", mask_token="<mask>", unk_token="<unk>")
    fast.chat_template = CHAR_CHAT_TEMPLATE
    os.makedirs(path, exist_ok=True)
    fast.save_pretrained(path)
    with open(os.path.join(path, "tokenizer_config.json")) as f:
        config = json.load(f)
    config["chat_template"] = CHAR_CHAT_TEMPLATE
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return path


CHAR_VOCAB_SIZE = len(CHAR_SPECIALS) + len(CHAR_ALPHABET)
