"""The bidirectional masked-diffusion transformer (LLaDA / Dream / Llama / Qwen2 layouts) in Flax NNX.

Layers are stored stacked (a leading `layers` axis on every block weight) and run with `lax.scan`, so
compile time does not grow with depth. Every parameter carries `logical_axes` metadata that the
sharding rules in `dlrl_jax.parallel` map onto a device mesh.

Shapes: B batch, L sequence, D d_model, H query heads, K kv heads, Hd head dim, F mlp hidden, V vocab.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec

from dlrl_jax.models import quantize
from dlrl_jax.models.config import LORA_TARGETS, ModelConfig
from dlrl_jax.models.layer_params import BIAS_PARAMS, INPUT_AXES, LAYER_PARAMS, NORMS, quantized_weights

# Mesh axes that split rows (the batch); see dlrl_jax.parallel.mesh. Kept here as names only, so the
# model does not depend on the parallel package.
_ROW_AXES = ("data", "fsdp")


def lora_weight_names(cfg: ModelConfig) -> tuple[str, ...]:
    return tuple(LORA_TARGETS[t] for t in cfg.lora_targets) if cfg.lora_rank else ()


def lora_specs(cfg: ModelConfig) -> dict:
    """name -> (shape without the layers axis, logical axes) of every LoRA factor: `lora_a_<w>` maps
    the projection's input to the rank, `lora_b_<w>` the rank to its output."""
    D, H, K, Hd, F = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.resolved_head_dim, cfg.mlp_hidden
    out = {}
    for name in lora_weight_names(cfg):
        shape_fn, axes = LAYER_PARAMS[name]
        shape, n_in = shape_fn(cfg, D, H, K, Hd, F), INPUT_AXES[name]
        out[f"lora_a_{name}"] = ((*shape[:n_in], cfg.lora_rank), (*axes[:n_in], "lora_rank"))
        out[f"lora_b_{name}"] = ((cfg.lora_rank, *shape[n_in:]), ("lora_rank", *axes[n_in:]))
    return out


def layer_param_names(cfg: ModelConfig) -> tuple[str, ...]:
    scales = tuple(name + quantize.SCALE_SUFFIX for name in quantized_weights(cfg))
    return (tuple(LAYER_PARAMS) + (tuple(BIAS_PARAMS) if cfg.qkv_bias else ()) + scales
            + tuple(lora_specs(cfg)))


class Layers(nnx.Module):
    """All transformer blocks, each weight stacked along a leading `layers` axis. With
    cfg.quantize_base the projections are stored as codes and scales (dlrl_jax/models/quantize.py)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        D, H, K, Hd, F = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.resolved_head_dim, cfg.mlp_hidden
        init = jax.nn.initializers.normal(0.02)
        specs = dict(LAYER_PARAMS, **(BIAS_PARAMS if cfg.qkv_bias else {}))
        for name, (shape_fn, axes) in specs.items():
            shape = (cfg.n_layers, *shape_fn(cfg, D, H, K, Hd, F))
            if name in NORMS:
                value = jnp.ones(shape, cfg.jnp_param_dtype)
            elif name in BIAS_PARAMS:
                value = jnp.zeros(shape, cfg.jnp_param_dtype)
            else:
                value = init(rngs.params(), shape, cfg.jnp_param_dtype)
            if name in quantized_weights(cfg):
                n_in = INPUT_AXES[name]
                stored_axes = quantize.storage_axes(cfg.quantize_base, name, shape[1:], axes, n_in)
                stored = quantize.quantize_stacked(value, cfg.quantize_base, n_in)  # (codes, scales)
                for (key, io_axes), v in zip(stored_axes.items(), stored):
                    setattr(self, key, nnx.Param(v, logical_axes=("layers", *io_axes)))
                continue
            setattr(self, name, nnx.Param(value, logical_axes=("layers", *axes)))
        for name, param in init_lora_factors(cfg, rngs).items():
            setattr(self, name, param)


def init_lora_factors(cfg: ModelConfig, rngs: nnx.Rngs) -> dict[str, nnx.Param]:
    """Fresh adapter factors, stacked over layers. PEFT's start: A uniform in +-1/sqrt(fan_in), B zero,
    so a new adapter changes nothing. Always float32, whatever the base's dtype (PEFT's default
    autocast_adapter_dtype): bfloat16 factors would round away most updates at the papers' rates."""
    out = {}
    for name, (shape, axes) in lora_specs(cfg).items():
        if name.startswith("lora_a_"):
            bound = 1.0 / math.sqrt(math.prod(shape[:-1]))
            value = jax.random.uniform(rngs.params(), (cfg.n_layers, *shape), jnp.float32, -bound, bound)
        else:
            value = jnp.zeros((cfg.n_layers, *shape), jnp.float32)
        out[name] = nnx.Param(value, logical_axes=("layers", *axes))
    return out


# model.prune_last_layer auto: prune when the layer stack is at most this large. The split copies the
# stack once per forward; beyond this size the copy's memory traffic outweighs the final layer's
# saved work on accelerators (bench/RESULTS.md, issue 19).
PRUNE_AUTO_BYTES = 64 * 2**20


class Transformer(nnx.Module):
    """Bidirectional transformer; `model(input_ids, attention_mask)` -> float32 logits [B, L, V].

    Output position j predicts token j for every family (Dream's one-position shift is undone here).
    `attention_mask` [B, L] bool marks real tokens (False for left padding); None means all real.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        init = jax.nn.initializers.normal(0.02)
        self.embed = nnx.Param(init(rngs.params(), (cfg.vocab_size, cfg.d_model), cfg.jnp_param_dtype),
                               logical_axes=("vocab", "embed"))
        self.layers = Layers(cfg, rngs)
        self.final_norm = nnx.Param(jnp.ones((cfg.d_model,), cfg.jnp_param_dtype), logical_axes=("norm",))
        if not cfg.tie_embeddings:
            self.lm_head = nnx.Param(init(rngs.params(), (cfg.d_model, cfg.vocab_size), cfg.jnp_param_dtype),
                                     logical_axes=("embed", "vocab"))

    def __call__(self, input_ids, attention_mask=None):
        return self.unembed(self.hidden(input_ids, attention_mask))

    def hidden(self, input_ids_BxL, attention_mask_BxL=None, dropout_key=None, last: int | None = None):
        """Final-norm hidden states [B, L, D] in the compute dtype, aligned so that `unembed` of
        position j predicts token j (for Dream, the state of position j-1; position 0 keeps its own).
        With a `dropout_key` and cfg.lora_dropout > 0, LoRA dropout is applied (training forwards).

        `last` = n: only the states of the last n positions, [B, n, D] (HF's logits_to_keep, one layer
        further): the final layer then runs its queries, attention output and MLP on those positions
        only (every position still gives its keys and values), the same numbers as slicing the full
        states up to float rounding."""
        L = input_ids_BxL.shape[1]
        if last is None or last >= L or not self._prunes_last_layer():
            h_BxLxD, _ = self._layers(input_ids_BxL, attention_mask_BxL, dropout_key=dropout_key)
            h_BxLxD = shift_states(self.cfg, h_BxLxD)
            return h_BxLxD if last is None else h_BxLxD[:, L - last:]
        shift = 1 if self.cfg.shift_logits else 0  # Dream: the state of position j-1 predicts token j
        h, _ = self._layers(input_ids_BxL, attention_mask_BxL, dropout_key=dropout_key, queries_from=L - last - shift)
        return h[:, :last]

    def _prunes_last_layer(self) -> bool:
        setting = self.cfg.prune_last_layer
        if setting != "auto":
            return setting
        stacked = sum(math.prod(getattr(self.layers, name).shape) * jnp.dtype(getattr(self.layers, name).dtype).itemsize
                      for name in layer_param_names(self.cfg))
        return stacked <= PRUNE_AUTO_BYTES

    def hidden_and_cache(self, input_ids_BxL, attention_mask_BxL=None):
        """(unshifted final-norm states [B, L, D], KV cache): the cache holds every layer's rotated
        keys and values, each [layers, B, L, K, Hd], for `hidden_window` to attend to later."""
        return self._layers(input_ids_BxL, attention_mask_BxL, keep_kv=True)

    def hidden_window(self, window_ids_BxW, attention_mask_BxL, cache, start):
        """Unshifted final-norm states [B, W, D] of sequence positions start..start+W-1 only.

        The window's queries attend to every key of the sequence: the window's own keys and values are
        computed fresh, every other position's come from `cache` (from `hidden_and_cache` on an earlier
        canvas) -- Fast-dLLM's approximate prefix / dual cache. With a cache of the current canvas this
        equals the full forward at the window."""
        return self._layers(window_ids_BxW, attention_mask_BxL, cache=cache, start=start)[0]

    def _layers(self, input_ids_BxW, attention_mask_BxL=None, keep_kv=False, cache=None, start=0, dropout_key=None,
                queries_from: int | None = None):
        cfg = self.cfg
        W = input_ids_BxW.shape[1]
        if attention_mask_BxL is None:
            attention_mask_BxL = jnp.ones(input_ids_BxW.shape, bool)
        attention_mask_BxL = attention_mask_BxL.astype(bool)
        # Positions count real tokens only, so a left-padded row sees the same rotary phases as unpadded.
        positions_BxL = jnp.maximum(jnp.cumsum(attention_mask_BxL, axis=1) - 1, 0)
        positions_BxW = jax.lax.dynamic_slice_in_dim(positions_BxL, start, W, axis=1)
        cos_BxWxHd, sin_BxWxHd = _rope_tables(positions_BxW, cfg.resolved_head_dim, cfg.rope_theta)
        x_BxWxD = constrain_rows(jnp.take(self.embed[...], input_ids_BxW, axis=0).astype(cfg.jnp_dtype))
        stacked = {name: getattr(self.layers, name)[...] for name in layer_param_names(cfg)}
        if cache is not None:
            stacked = dict(stacked, cached_k=cache[0], cached_v=cache[1])
        dropout = dropout_key is not None and cfg.lora_dropout > 0 and cfg.lora_rank > 0
        if dropout:
            stacked = dict(stacked, layer_index=jnp.arange(cfg.n_layers))

        def block(x, layer):
            kv_cache = (layer["cached_k"], layer["cached_v"]) if cache is not None else None
            layer_key = jax.random.fold_in(dropout_key, layer["layer_index"]) if dropout else None
            x, kv = _block(cfg, x, layer, attention_mask_BxL, cos_BxWxHd, sin_BxWxHd, kv_cache, start, layer_key)
            x = constrain_rows(x)
            return x, (kv if keep_kv else None)

        if cfg.remat != "none":
            policy = None if cfg.remat == "full" else jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims
            block = jax.checkpoint(block, policy=policy, prevent_cse=False)
        if queries_from is None:
            x_BxWxD, kv = jax.lax.scan(block, x_BxWxD, stacked)
            return _rms_norm(x_BxWxD, self.final_norm[...], cfg.rms_norm_eps), kv
        # every layer but the last over all positions, then the last one's queries from queries_from on
        head = jax.tree.map(lambda w: w[:-1], stacked)
        final = jax.tree.map(lambda w: w[-1], stacked)
        x_BxWxD, _ = jax.lax.scan(block, x_BxWxD, head)
        layer_key = jax.random.fold_in(dropout_key, cfg.n_layers - 1) if dropout else None
        x_BxTxD = _block(cfg, x_BxWxD, final, attention_mask_BxL, cos_BxWxHd, sin_BxWxHd, dropout_key=layer_key,
                         queries_from=queries_from)[0]
        return _rms_norm(constrain_rows(x_BxTxD), self.final_norm[...], cfg.rms_norm_eps), None

    def unembed(self, h_BxLxD):
        """Float32 logits [..., V] from (any gathered subset of) hidden states [..., D]."""
        cfg = self.cfg
        head_DxV = self.embed[...].T if cfg.tie_embeddings else self.lm_head[...]
        return constrain_rows(jnp.einsum("...d,dv->...v", h_BxLxD, head_DxV.astype(cfg.jnp_dtype),
                                         preferred_element_type=jnp.float32))


def constrain_rows(x):
    """Keeps activations split by rows over the mesh's (data, fsdp) axes when a mesh is set
    (`jax.set_mesh`) and the rows divide evenly. Without it XLA may keep FSDP's weights sharded and
    gather every row's activations onto every device instead, which grows with the device count."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not set(_ROW_AXES) <= set(mesh.axis_names):
        return x
    if x.shape[0] % (mesh.shape["data"] * mesh.shape["fsdp"]):
        return x
    return jax.lax.with_sharding_constraint(x, PartitionSpec(_ROW_AXES, *([None] * (x.ndim - 1))))


def shift_states(cfg: ModelConfig, h_BxLxD):
    """Dream's alignment: the state that predicts token j is that of position j-1 (position 0 keeps its own)."""
    if cfg.shift_logits:
        return jnp.concatenate([h_BxLxD[:, :1], h_BxLxD[:, :-1]], axis=1)
    return h_BxLxD


def _rms_norm(x, scale, eps):
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (normed.astype(x.dtype) * scale.astype(x.dtype)[(None,) * (x.ndim - 1)]).astype(x.dtype)


def _rope_tables(positions_BxL, head_dim, theta):
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = positions_BxL.astype(jnp.float32)[..., None] * inv_freq[None, None, :]
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def _apply_rope(x_BxLxNxHd, cos_BxLxHd, sin_BxLxHd):
    half = x_BxLxNxHd.shape[-1] // 2
    x32 = x_BxLxNxHd.astype(jnp.float32)
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    out = x32 * cos_BxLxHd[:, :, None, :] + rotated * sin_BxLxHd[:, :, None, :]
    return out.astype(x_BxLxNxHd.dtype)


# Each adapted projection draws its own dropout mask (as PEFT's per-module dropout does).
_DROPOUT_STREAM = {name: i for i, name in enumerate(INPUT_AXES)}


def lora_dropout_mask(cfg: ModelConfig, layer_key, name: str, shape):
    """The keep mask of projection `name`'s LoRA input in one layer: bernoulli(1 - lora_dropout) drawn
    from fold_in(layer_key, stream of name), where layer_key = fold_in(dropout_key, layer index)."""
    return jax.random.bernoulli(jax.random.fold_in(layer_key, _DROPOUT_STREAM[name]), 1.0 - cfg.lora_dropout, shape)


def _proj(cfg, p, name, equation, x, dropout_key=None, queries_from=None):
    """x through projection `name`, plus its LoRA path (dropout(x) A) B * alpha / rank when adapted;
    the low-rank path never forms the full-size update. `queries_from` = f: x holds positions f.. of
    the sequence only, and the dropout mask is the full sequence's from f on."""
    dt = cfg.jnp_dtype
    if name + quantize.SCALE_SUFFIX in p:  # a quantized base: dequantized for this matmul only
        D, H, K, Hd, F = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.resolved_head_dim, cfg.mlp_hidden
        shape = LAYER_PARAMS[name][0](cfg, D, H, K, Hd, F)

        def quantized_matmul(x, codes, scale):
            return _einsum(equation, x, quantize.dequantize(cfg.quantize_base, codes, scale, shape, dt))

        if cfg.remat == "none":  # (with remat the layer's rematerialisation does this already)
            # the backward keeps the codes (slices of the stacked inputs) and dequantizes again,
            # rather than keeping every layer's full-width weight as a residual
            quantized_matmul = jax.checkpoint(quantized_matmul, policy=jax.checkpoint_policies.nothing_saveable)
        y = quantized_matmul(x, p[name], p[name + quantize.SCALE_SUFFIX])
    else:
        y = _einsum(equation, x, p[name].astype(dt))
    if f"lora_a_{name}" in p:
        if dropout_key is not None:
            skipped = queries_from or 0
            keep = lora_dropout_mask(cfg, dropout_key, name, (x.shape[0], skipped + x.shape[1], *x.shape[2:]))
            keep = keep[:, skipped:]
            x = jnp.where(keep, x / (1.0 - cfg.lora_dropout), 0).astype(x.dtype)
        a, b = p[f"lora_a_{name}"].astype(dt), p[f"lora_b_{name}"].astype(dt)
        n_in = INPUT_AXES[name]
        product = _lora_product_delta_grad if _delta_grad_is_cheaper(x, a, b, n_in) else _lora_product
        y = y + cfg.lora_scale * product(x, a, b, n_in)
    return y


def _lora_product(x, a, b, n_in):
    """(x A) B over x's last `n_in` axes: the adapter's low-rank path, never forming A B."""
    return _tensordot(_tensordot(x, a, n_in), b, 1)


def _bf16_on_cpu(x) -> bool:
    """XLA's CPU backend runs a bfloat16 x bfloat16 -> bfloat16 dot as converts to float32 around a
    float32 dot, but asked for a float32 result it uses its native bfloat16 kernel (avx512_bf16):
    the same arithmetic (float32 accumulation, one rounding to bfloat16 at the end), about twice as
    fast as float32 (bench/RESULTS.md, issue 19). GPUs and TPUs keep the plain bfloat16 dot."""
    return x.dtype == jnp.bfloat16 and jax.default_backend() == "cpu"


def _einsum(equation, x, w):
    if _bf16_on_cpu(x):
        return jnp.einsum(equation, x, w, preferred_element_type=jnp.float32).astype(x.dtype)
    return jnp.einsum(equation, x, w)


def _tensordot(x, w, axes):
    if _bf16_on_cpu(x):
        return jnp.tensordot(x, w, axes=axes, preferred_element_type=jnp.float32).astype(x.dtype)
    return jnp.tensordot(x, w, axes=axes)


def _delta_grad_is_cheaper(x, a, b, n_in) -> bool:
    """Whether the backward through the product W = A B (2 N d_in d_out + 3 d_in d_out r multiply-adds)
    costs less than through the rank-r path (2 N r (d_in + d_out)): only for ranks near the width,
    e.g. r 128 on a d 64 test model; never at the papers' r 128 on d 3584-4096."""
    tokens, r = math.prod(x.shape[:-n_in]), a.shape[-1]
    d_in, d_out = math.prod(a.shape[:n_in]), math.prod(b.shape[1:])
    return 2 * tokens * d_in * d_out + 3 * d_in * d_out * r < 2 * tokens * r * (d_in + d_out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _lora_product_delta_grad(x, a, b, n_in):
    """`_lora_product` with the same forward; its backward goes through the d_in x d_out product A B."""
    return _lora_product(x, a, b, n_in)


def _lora_delta_fwd(x, a, b, n_in):
    return _lora_product(x, a, b, n_in), (x, a, b)


def _lora_delta_bwd(n_in, residuals, dy):
    x, a, b = residuals
    dt = x.dtype
    in_shape, out_shape, r = a.shape[:n_in], b.shape[1:], a.shape[-1]
    x_NxI = x.reshape(-1, math.prod(in_shape))
    dy_NxO = dy.reshape(-1, math.prod(out_shape))
    a_IxR, b_RxO = a.reshape(-1, r), b.reshape(r, -1)
    delta_IxO = jnp.dot(a_IxR, b_RxO, preferred_element_type=jnp.float32).astype(dt)
    d_delta_IxO = jnp.dot(x_NxI.T, dy_NxO, preferred_element_type=jnp.float32)
    dx = jnp.dot(dy_NxO, delta_IxO.T, preferred_element_type=jnp.float32).astype(dt).reshape(x.shape)
    da = jnp.dot(d_delta_IxO.astype(dt), b_RxO.T, preferred_element_type=jnp.float32).astype(a.dtype)
    db = jnp.dot(a_IxR.T, d_delta_IxO.astype(dt), preferred_element_type=jnp.float32).astype(b.dtype)
    return dx, da.reshape(a.shape), db.reshape(b.shape)


_lora_product_delta_grad.defvjp(_lora_delta_fwd, _lora_delta_bwd)


@jax.custom_vjp
def attention(q_BxTxNxHd, k_BxSxKxHd, v_BxSxKxHd, mask_BxS):
    """Bidirectional attention of every query over the unmasked keys: [B, T, N, Hd] in q's dtype.

    Undifferentiated (rollouts, old/reference passes) this is `jax.nn.dot_product_attention` itself.
    Under differentiation a hand-written forward and backward with the heads as a plain batch axis
    replace it: XLA's CPU code for the autodiff of jax's grouped-head layout spends twice as long in
    the backward (bench/RESULTS.md, issue 19). The values agree to float rounding."""
    return jax.nn.dot_product_attention(q_BxTxNxHd, k_BxSxKxHd, v_BxSxKxHd, mask=mask_BxS[:, None, None, :])


def _attention_probs(q_BxTxNxHd, k_BxSxNxHd, mask_BxS):
    """Softmax weights [B, N, T, S] in float32, with jax.nn.dot_product_attention's scale and mask value."""
    logits = jnp.einsum("btnh,bsnh->bnts", q_BxTxNxHd, k_BxSxNxHd, preferred_element_type=jnp.float32)
    logits = logits * jnp.float32(1.0 / math.sqrt(q_BxTxNxHd.shape[-1]))
    logits = jnp.where(mask_BxS[:, None, None, :], logits, jnp.float32(-0.7 * float(jnp.finfo(jnp.float32).max)))
    return jax.nn.softmax(logits, axis=-1)


def _attention_fwd(q, k, v, mask_BxS):
    groups = q.shape[2] // k.shape[2]  # grouped-query heads share a key/value head: query head n uses n // groups
    k_full, v_full = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)
    probs = _attention_probs(q, k_full, mask_BxS)
    out = jnp.einsum("bnts,bsnh->btnh", probs.astype(v.dtype), v_full)
    return out, (q, k, v, mask_BxS, probs)


def _attention_bwd(residuals, d_out):
    q, k, v, mask_BxS, probs = residuals
    B, S, K, Hd = k.shape
    groups, dt = q.shape[2] // K, q.dtype

    def dot(eq, a, b):  # operands in the compute dtype, float32 accumulation (as the autodiff of jax's)
        return jnp.einsum(eq, a.astype(dt), b.astype(dt), preferred_element_type=jnp.float32)

    dv = dot("bnts,btnh->bsnh", probs, d_out)
    d_probs = dot("btnh,bsnh->bnts", d_out, jnp.repeat(v, groups, axis=2))
    # the softmax's backward, as jax.nn.softmax's jvp transposes: p * (dp - sum_s p dp)
    d_logits = probs * (d_probs - (probs * d_probs).sum(axis=-1, keepdims=True)) \
        * jnp.float32(1.0 / math.sqrt(q.shape[-1]))
    dq = dot("bnts,bsnh->btnh", d_logits, jnp.repeat(k, groups, axis=2))
    dk = dot("bnts,btnh->bsnh", d_logits, q)

    def per_kv_head(x):  # query heads of one group add up onto their shared key/value head
        return x.reshape(B, S, K, groups, Hd).sum(axis=3).astype(dt)

    return dq.astype(dt), per_kv_head(dk), per_kv_head(dv), np.zeros(mask_BxS.shape, jax.dtypes.float0)


attention.defvjp(_attention_fwd, _attention_bwd)


def _block(cfg, x_BxLxD, p, mask_BxL, cos, sin, kv_cache=None, start=0, dropout_key=None, queries_from=None):
    """One transformer block over L query positions. Returns (new x, this block's rotated (k, v)).
    With kv_cache ([B, L_full, K, Hd] each), the queries sit at positions start.. of the full sequence
    and attend to the cache with their own fresh keys/values written over it. With `queries_from` = f
    (static), only positions f.. are queried: the new x is [B, L - f, D] (keys and values from all L).
    LoRA dropout draws its masks over all L positions and keeps the queried rows, so the numbers do not
    depend on f."""
    dt = cfg.jnp_dtype
    h = _rms_norm(x_BxLxD, p["attn_norm"], cfg.rms_norm_eps)
    k = _proj(cfg, p, "wk", "bld,dkh->blkh", h, dropout_key)
    v = _proj(cfg, p, "wv", "bld,dkh->blkh", h, dropout_key)
    if queries_from is not None:
        x_BxLxD, h, cos_q, sin_q = x_BxLxD[:, queries_from:], h[:, queries_from:], cos[:, queries_from:], \
            sin[:, queries_from:]
    else:
        cos_q, sin_q = cos, sin
    q = _proj(cfg, p, "wq", "bld,dnh->blnh", h, dropout_key, queries_from)
    if cfg.qkv_bias:
        q, k, v = (x + p[name].astype(dt)[None, None] for x, name in ((q, "bq"), (k, "bk"), (v, "bv")))
    q, k = _apply_rope(q, cos_q, sin_q), _apply_rope(k, cos, sin)
    keys, values = k, v
    if kv_cache is not None:
        keys = jax.lax.dynamic_update_slice_in_dim(kv_cache[0].astype(k.dtype), k, start, axis=1)
        values = jax.lax.dynamic_update_slice_in_dim(kv_cache[1].astype(v.dtype), v, start, axis=1)
    attn = attention(q, keys, values, mask_BxL)
    x_BxLxD = x_BxLxD + _proj(cfg, p, "wo", "blnh,nhd->bld", attn, dropout_key, queries_from)
    h = _rms_norm(x_BxLxD, p["mlp_norm"], cfg.rms_norm_eps)
    gate = _proj(cfg, p, "w_gate", "bld,df->blf", h, dropout_key, queries_from)
    up = _proj(cfg, p, "w_up", "bld,df->blf", h, dropout_key, queries_from)
    down = _proj(cfg, p, "w_down", "blf,fd->bld", jax.nn.silu(gate) * up, dropout_key, queries_from)
    return x_BxLxD + down, (k, v)
