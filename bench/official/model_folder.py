"""The tiny model folder both sides load: this project's weights (`save_pretrained`) in LLaDA's layout,
the character tokenizer with its chat template, and LLaDA's own modeling code copied in, so that
`transformers.AutoModel.from_pretrained(folder, trust_remote_code=True)` builds LLaDA's real
`LLaDAModelLM` on the very weights `dlrl_jax.models.from_pretrained(folder)` reads.

LLaDA's modeling code (`modeling_llada.py`, `configuration_llada.py`) ships with the Hugging Face model
GSAI-ML/LLaDA-8B-Instruct, not with its GitHub repository; the user points `--llada-code` at a folder
holding the two files (bench/official/setup.sh makes one from a public repository that vendors them).
Nothing of theirs is committed here: the files are copied into the model folder at run time.

Usage (this project's venv):
    python -m bench.official.model_folder --out /work/official_model --llada-code DIR [--seed 0]
    python -m bench.official.model_folder --out /work/official_model_30m --llada-code DIR \
        --n-layers 8 --d-model 512 --n-heads 8 --mlp-hidden 1536     # issue 27 item 5's ~30M model
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

LLADA_CODE_FILES = ("modeling_llada.py", "configuration_llada.py")

# The fields LLaDA's configuration class reads with defaults that are wrong for an inference-equivalent
# model (its dataclass defaults are OLMo's: 0.1 dropouts, LayerNorm, sequential blocks): set them as
# GSAI-ML/LLaDA-8B-Instruct's config.json does, so the official side runs the same network as ours.
LLADA_RUNTIME_FIELDS = {
    "attention_dropout": 0.0, "residual_dropout": 0.0, "embedding_dropout": 0.0, "alibi": False,
    "alibi_bias_max": 8.0, "flash_attention": False, "input_emb_norm": False, "attention_layer_norm": False,
    "layer_norm_with_affine": True, "attention_layer_norm_with_affine": True, "bias_for_layer_norm": False,
    "scale_logits": False, "rope_full_precision": True, "block_group_size": 1, "init_fn": "mitchell",
    "init_std": 0.02, "use_cache": False,
    "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                 "AutoModel": "modeling_llada.LLaDAModelLM",
                 "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"},
}


class ModelFolderError(ValueError):
    """The LLaDA code folder or the model folder is unusable; the message names the file and the fix."""


def llada_config(base: dict, max_sequence_length: int) -> dict:
    """config.json for both sides: `base` (what `save_pretrained` wrote) plus LLaDA's runtime fields."""
    if base.get("model_type") != "llada":
        raise ModelFolderError(f"config.json has model_type {base.get('model_type')!r}; the official trainers "
                               "need a LLaDA-family model (model_type 'llada')")
    out = dict(base)
    out.update(LLADA_RUNTIME_FIELDS)
    out["max_sequence_length"] = int(max_sequence_length)
    out["mlp_ratio"] = max(1, base["mlp_hidden_size"] // base["d_model"])  # unused: mlp_hidden_size wins
    return out


def copy_llada_code(code_dir: str, folder: str) -> None:
    for name in LLADA_CODE_FILES:
        src = os.path.join(code_dir, name)
        if not os.path.isfile(src):
            raise ModelFolderError(f"{src} is missing; --llada-code must hold {' and '.join(LLADA_CODE_FILES)} "
                                   "(LLaDA's Hugging Face modeling code; bench/official/setup.sh fetches them)")
        shutil.copyfile(src, os.path.join(folder, name))


def portable_tokenizer_class(folder: str) -> None:
    """Names the tokenizer class every transformers release has: recent releases write their own
    backend's name ("TokenizersBackend"), which the official environments' older transformers lack."""
    path = os.path.join(folder, "tokenizer_config.json")
    with open(path) as f:
        config = json.load(f)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def parameter_count(config: dict) -> int:
    """Trainable parameters of the LLaDA model a config.json describes (the numbers to quote for a
    folder): per layer the q, k, v, o projections, SwiGLU's gate, up and down, two RMSNorm scales; the
    embedding, the untied output head and the final norm."""
    d, ff, vocab = config["d_model"], config["mlp_hidden_size"], config["embedding_size"]
    head_dim = d // config["n_heads"]
    kv = config["n_kv_heads"] * head_dim
    per_layer = d * d + 2 * d * kv + d * d + 3 * d * ff + 2 * d
    head = 0 if config.get("weight_tying") else vocab * d
    return config["n_layers"] * per_layer + vocab * d + head + d


def build(out: str, llada_code: str | None, *, preset: str = "tiny", seed: int = 0, n_layers: int | None = None,
          max_sequence_length: int = 512, d_model: int | None = None, n_heads: int | None = None,
          mlp_hidden: int | None = None) -> str:
    """Writes the folder (random weights of the `preset` shape, with the given sizes replacing the
    preset's, initialised from `seed`) and returns it."""
    from flax import nnx

    from dlrl_jax import models
    from dlrl_jax.models.config import preset as model_preset
    from dlrl_jax.models.tokenizer import write_char_tokenizer
    from dlrl_jax.models.transformer import Transformer

    sizes = {"n_layers": n_layers, "d_model": d_model, "n_heads": n_heads, "n_kv_heads": n_heads,
             "mlp_hidden": mlp_hidden}
    cfg = model_preset(preset, param_dtype="float32", dtype="float32",
                       **{k: v for k, v in sizes.items() if v})
    model = Transformer(cfg, rngs=nnx.Rngs(params=seed))
    models.save_pretrained(model, out)
    write_char_tokenizer(out)
    portable_tokenizer_class(out)
    path = os.path.join(out, "config.json")
    with open(path) as f:
        base = json.load(f)
    with open(path, "w") as f:
        json.dump(llada_config(base, max_sequence_length), f, indent=2)
    if llada_code is not None:
        copy_llada_code(llada_code, out)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--llada-code", required=True, help="folder with modeling_llada.py and configuration_llada.py")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-layers", type=int, default=None)
    p.add_argument("--d-model", type=int, default=None)
    p.add_argument("--n-heads", type=int, default=None, help="query and key/value heads (LLaDA: the same)")
    p.add_argument("--mlp-hidden", type=int, default=None)
    p.add_argument("--max-sequence-length", type=int, default=512)
    args = p.parse_args(argv)
    out = build(args.out, args.llada_code, seed=args.seed, n_layers=args.n_layers, d_model=args.d_model,
                n_heads=args.n_heads, mlp_hidden=args.mlp_hidden, max_sequence_length=args.max_sequence_length)
    with open(os.path.join(out, "config.json")) as f:
        print(f"{out}: {parameter_count(json.load(f)):,} parameters")


if __name__ == "__main__":
    main()
