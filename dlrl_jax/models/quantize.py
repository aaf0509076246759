"""A quantized frozen base for LoRA (QLoRA): the projection weights stored as 4- or 8-bit codes with
scales, dequantized inside each projection's forward (`dequantize`, called from the transformer).

What is quantized follows bitsandbytes as the official trainers load the base
(`BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
bnb_4bit_compute_dtype=torch.bfloat16)` in vishnutez/egspo-dllm-rl egspo/egspo_train.py and
dllm-reasoning/d1 diffu-grpo/diffu_grpo_train.py): transformers turns every nn.Linear of the blocks
into a 4-bit layer -- all seven projections q, k, v, o, gate, up, down, whatever LoRA adapts -- and
keeps the embedding, the norms and the output head (the model's last module) in the model dtype.
The weights are dequantized to the compute dtype for each matmul (bnb_4bit_compute_dtype).

Modes (the codes and codebook are qwix's, a maintained JAX quantization library):
  nf4  - NormalFloat4 (the QLoRA paper's codebook), one float32 absmax scale per block of 64
         consecutive input elements of one output, as bitsandbytes blocks the row-major [out, in]
         torch weight (blocksize 64): codes and scales equal bitsandbytes' quantize_4bit bit for bit
         (tests/models/test_qlora.py). Not done: bitsandbytes' double quantization (8-bit scales of
         the scales, `bnb_4bit_use_double_quant`; qwix has no 8-bit dynamic map); the scales stay
         float32 (0.5 bit per weight, not 0.127), and on the tiny model the logits differ from
         bitsandbytes' double-quantized base's by 0.005 at most, against 0.17 from the unquantized.
  int4 - symmetric int4 with the same blocks (bitsandbytes' 4-bit alternative is fp4, not int4).
  int8 - symmetric int8, one scale per output channel (the row-wise weight scale of LLM.int8(),
         without its outlier decomposition of the activations).

Storage: each stacked projection `<w>` [layers, *in, *out] becomes codes `<w>` [layers, IN, OUT]
(the input and output axes flattened, so a block may span heads as bitsandbytes' do) and scales
`<w>_scale` [layers, IN / 64 (1 for int8), OUT], float32. qwix keeps NF4 codes as uint4 bucket
indices; they are stored bitcast to int4 (the same four bits) because Orbax's tensorstore has no
uint4, so checkpoints hold the quantized base itself.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import qwix
from flax import nnx

from dlrl_jax.models.config import ConfigError
from dlrl_jax.models.layer_params import quantized_weights

BLOCK_SIZE = 64  # bitsandbytes' blocksize for 4-bit weights (QLoRA)
_QTYPES = {"nf4": "nf4", "int4": jnp.int4, "int8": jnp.int8}
# name of a quantized projection's scales next to its codes
SCALE_SUFFIX = "_scale"


def storage_axes(mode: str, name: str, shape, axes, n_in: int) -> dict:
    """name -> logical axes (without the layers axis) of the codes and scales that store projection
    `name` of per-layer `shape` and logical `axes` (its first `n_in` axes are the input)."""
    IN = math.prod(shape[:n_in])
    if mode != "int8" and IN % BLOCK_SIZE:
        raise ConfigError(f"model.quantize_base={mode}: projection {name} has {IN} inputs, not a multiple of the "
                          f"block size {BLOCK_SIZE}; use quantize_base=int8 (per-channel) or none")
    # a flattened axis shards like its outermost part (heads split whole over the tensor axis)
    io_axes = (axes[0], axes[n_in])
    return {name: io_axes, name + SCALE_SUFFIX: io_axes}


@functools.partial(jax.jit, static_argnames=("mode", "n_in"))
def quantize_stacked(w, mode: str, n_in: int):
    """(codes [layers, IN, OUT], scales [layers, blocks, OUT] float32) of a stacked weight
    [layers, *in, *out], quantized in float32 one layer at a time (the NF4 bucketing compares each
    weight with all 16 codes, so a whole stack at once would need 16x its size)."""
    IN = math.prod(w.shape[1:1 + n_in])

    def one(w1):
        w2 = w1.reshape(IN, -1).astype(jnp.float32)
        if mode == "int8":
            q = qwix.quantize(w2, _QTYPES[mode], channelwise_axes=(1,))
        else:
            q = qwix.quantize(w2, _QTYPES[mode], channelwise_axes=(1,), tiled_axes={0: BLOCK_SIZE})
        codes = jax.lax.bitcast_convert_type(q.qvalue, jnp.int4) if mode == "nf4" else q.qvalue
        return codes, q.scale

    return jax.lax.map(one, w)


def dequantize(mode: str, codes_INxOUT, scale_BxOUT, shape, dtype):
    """One layer's weight of `shape` in `dtype` from its codes and scales (inside the forward)."""
    qvalue = jax.lax.bitcast_convert_type(codes_INxOUT, jnp.uint4) if mode == "nf4" else codes_INxOUT
    w = qwix.dequantize(qwix.QArray(qvalue, scale_BxOUT, None, _QTYPES[mode]))
    return w.astype(dtype).reshape(shape)


def quantize_base(model, mode: str):
    """`model` (an NNX Transformer without LoRA adapters or with them) with its projection weights
    stored quantized in `mode`; everything else is shared unchanged."""
    if model.cfg.quantize_base != "none":
        raise ConfigError(f"the model base is already quantized ({model.cfg.quantize_base})")
    if mode == "none":
        return model
    cfg = model.cfg.replace(quantize_base=mode)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: type(model)(cfg, rngs=nnx.Rngs(params=0))))
    values = nnx.to_pure_dict(nnx.state(model))
    layers = values["layers"]
    for name, n_in in quantized_weights(cfg).items():
        layers[name], layers[name + SCALE_SUFFIX] = quantize_stacked(layers[name], mode, n_in)
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)


def dequantize_base(model):
    """`model` with plain projection weights again (the dequantized base, in cfg.param_dtype)."""
    cfg = model.cfg
    if cfg.quantize_base == "none":
        return model
    plain = cfg.replace(quantize_base="none")
    graphdef, state = nnx.split(nnx.eval_shape(lambda: type(model)(plain, rngs=nnx.Rngs(params=0))))
    values = nnx.to_pure_dict(nnx.state(model))
    layers = values["layers"]
    for name in quantized_weights(cfg):
        codes, scale = layers[name], layers.pop(name + SCALE_SUFFIX)
        shape = state["layers"][name].shape
        layers[name] = jax.vmap(lambda c, s: dequantize(cfg.quantize_base, c, s, shape[1:], cfg.jnp_param_dtype))(
            codes, scale)
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)
