"""LoRA: a fresh adapter and an adapter switched off give the base model's logits exactly; a trained
(random) adapter merged and exported loads in PyTorch (transformers' Llama, bidirectional) with the
JAX low-rank forward's logits; LoRA dropout equals PEFT's forward written in PyTorch with the same
masks; a LoRA update moves only the adapter."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
import torch
from transformers import LlamaForCausalLM

from dlrl_jax import checkpoints, models
from dlrl_jax.models.lora import LoRASettings, adapter_off, add_lora, merge_lora, trainable_mask
from dlrl_jax.models.transformer import lora_dropout_mask
from dlrl_jax.training.update import ParamPartition, init_opt_state, make_update
from tests.models import hf_oracle

IDS = np.random.default_rng(5).integers(0, 97, (2, 11))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch_model = hf_oracle.torch_model("llama", seed=4)
    path = hf_oracle.write_checkpoint(torch_model, "llama", str(tmp_path_factory.mktemp("llama")))
    return checkpoints.from_pretrained(path)


def _randomised(model, scale=0.05):
    graphdef, params = models.split(model)
    leaves, treedef = jax.tree.flatten(params)
    mask = jax.tree.leaves(trainable_mask(params))
    keys = jax.random.split(jax.random.key(9), len(leaves))
    leaves = [x + scale * jax.random.normal(k, x.shape, x.dtype) if m else x for x, m, k in zip(leaves, mask, keys)]
    return graphdef, jax.tree.unflatten(treedef, leaves)


def test_fresh_and_switched_off_adapters_are_the_base_exactly(base):
    want = np.asarray(base(jnp.asarray(IDS, jnp.int32)))
    lora = add_lora(base, LoRASettings(rank=4, alpha=8.0))
    assert lora.cfg.lora_rank == 4 and sum(jax.tree.leaves(trainable_mask(models.split(lora)[1]))) == 14
    np.testing.assert_array_equal(np.asarray(lora(jnp.asarray(IDS, jnp.int32))), want)
    graphdef, params = _randomised(lora)
    on = np.asarray(models.forward(graphdef, params, jnp.asarray(IDS, jnp.int32)))
    assert np.abs(on - want).max() > 1e-2  # the adapter does something
    np.testing.assert_array_equal(np.asarray(models.forward(graphdef, adapter_off(params), jnp.asarray(IDS, jnp.int32))),
                                  want)


@pytest.mark.parametrize("targets", [("q", "k", "v", "o", "gate", "up", "down"), ("q", "v")])
def test_merged_export_loads_in_pytorch_with_matching_logits(base, tmp_path, targets):
    graphdef, params = _randomised(add_lora(base, LoRASettings(rank=3, alpha=6.0, targets=targets)))
    jax_logits = np.asarray(models.forward(graphdef, params, jnp.asarray(IDS, jnp.int32)))  # low-rank path
    merged = merge_lora(nnx.merge(graphdef, params))
    assert merged.cfg.lora_rank == 0
    checkpoints.save_pretrained(nnx.merge(graphdef, params), str(tmp_path / "merged"))  # merges on the way out
    torch_model = LlamaForCausalLM.from_pretrained(str(tmp_path / "merged")).float().eval()
    np.testing.assert_allclose(hf_oracle.torch_logits(torch_model, IDS, "llama"), jax_logits, atol=1e-4, rtol=0)


def test_a_lora_update_moves_only_the_adapter(base):
    graphdef, params = models.split(add_lora(base, LoRASettings(rank=2, alpha=4.0)))
    partition = ParamPartition(params, trainable_mask(params))
    tx = optax.adam(1e-2)
    opt_state = init_opt_state(tx, params, partition)
    assert len(jax.tree.leaves(opt_state)) == 2 * 14 + 1  # two moments per adapter factor, and the count
    before = jax.tree.map(np.asarray, params)

    def loss_fn(p, item):
        logits = models.forward(graphdef, p, item["ids"])
        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, item["ids"][..., None], -1)[..., 0]), {}

    update = make_update(loss_fn, tx, partition)
    params, opt_state, metrics = update(params, opt_state, {"ids": jnp.asarray(IDS, jnp.int32)[None]})
    after = jax.tree.map(np.asarray, params)
    for (path, b), a, m in zip(jax.tree_util.tree_leaves_with_path(before), jax.tree.leaves(after),
                               jax.tree.leaves(trainable_mask(params))):
        if m and "lora_b" in jax.tree_util.keystr(path):
            assert not np.array_equal(a, b), path  # B starts at zero and gets a gradient
        elif not m:
            np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


class _LoRALinear(torch.nn.Module):
    """PEFT's LoRA forward written out: base(x) + scale * ((x * keep / (1 - p)) A) B, with a given keep mask."""

    def __init__(self, base, a, b, scale, rate):
        super().__init__()
        self.base, self.a, self.b, self.scale, self.rate = base, a, b, scale, rate
        self.keep = None

    def forward(self, x):
        dropped = x * self.keep / (1.0 - self.rate)
        return self.base(x) + self.scale * (dropped @ self.a) @ self.b


def test_lora_dropout_matches_pytorch_with_the_documented_masks(base):
    """Dropout on each adapted projection's input, one mask per projection and layer drawn as
    `lora_dropout_mask` documents; PyTorch applies those masks in hand-written LoRA modules around
    transformers' Llama projections, and the logits agree."""
    rate, key = 0.3, jax.random.key(12)
    graphdef, params = _randomised(add_lora(base, LoRASettings(rank=3, alpha=6.0, dropout=rate)), scale=0.2)
    model = nnx.merge(graphdef, params)
    cfg = model.cfg
    ids = jnp.asarray(IDS, jnp.int32)
    got = np.asarray(models.unembed(graphdef, params, models.hidden(graphdef, params, ids, None, key)))
    without = np.asarray(models.forward(graphdef, params, ids))
    assert np.abs(got - without).max() > 1e-3  # dropout changes the forward; no key means no dropout
    np.testing.assert_array_equal(np.asarray(models.unembed(graphdef, params, models.hidden(graphdef, params, ids))),
                                  without)

    torch_model = hf_oracle.torch_model("llama", seed=4)  # the weights `base` was loaded from
    layers = nnx.to_pure_dict(nnx.state(model))["layers"]
    B, L = IDS.shape
    shapes = {"wq": (B, L, cfg.d_model), "wk": (B, L, cfg.d_model), "wv": (B, L, cfg.d_model),
              "wo": (B, L, cfg.n_heads, cfg.resolved_head_dim), "w_gate": (B, L, cfg.d_model),
              "w_up": (B, L, cfg.d_model), "w_down": (B, L, cfg.mlp_hidden)}
    modules = {"wq": "self_attn.q_proj", "wk": "self_attn.k_proj", "wv": "self_attn.v_proj", "wo": "self_attn.o_proj",
               "w_gate": "mlp.gate_proj", "w_up": "mlp.up_proj", "w_down": "mlp.down_proj"}
    for index, layer in enumerate(torch_model.model.layers):
        layer_key = jax.random.fold_in(key, index)
        for name, path in modules.items():
            a = np.asarray(layers[f"lora_a_{name}"][index])
            b = np.asarray(layers[f"lora_b_{name}"][index])
            parent, attr = layer.get_submodule(path.rsplit(".", 1)[0]), path.rsplit(".", 1)[1]
            wrapped = _LoRALinear(getattr(parent, attr), torch.from_numpy(np.array(a.reshape(-1, a.shape[-1]))),
                                  torch.from_numpy(np.array(b.reshape(b.shape[0], -1))), cfg.lora_scale, rate)
            keep = np.asarray(lora_dropout_mask(cfg, layer_key, name, shapes[name]))
            wrapped.keep = torch.from_numpy(keep.reshape(B, L, -1).astype(np.float32))
            setattr(parent, attr, wrapped)
    want = hf_oracle.torch_logits(torch_model, IDS, "llama")
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
