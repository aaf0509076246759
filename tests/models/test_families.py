"""The model-family registry (dlrl_jax/models/families/). A family registered from outside the package
-- LLaDA's config mapping under its own model_type, its weights under other names -- loads through
`models.from_pretrained`: a tiny LLaDA export whose tensors this test renames by its own table (not the
family record's) gives, read as the new family, the very logits of the original read as LLaDA (one set
of weights, two name layouts). Its export writes the renamed layout back, PEFT finds its modules under
the new names, and once unregistered the family is refused by name, as is an unknown one."""

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from dlrl_jax import models, rollout
from dlrl_jax.checkpoints import CheckpointError, peft
from dlrl_jax.models import families

RENAMED = "renamed_llada"  # the outside family's name and config.json model_type
# LLaDA key -> the outside layout's, by prefix (worked out here, independently of the family record)
RENAME = (("model.transformer.wte.", "backbone.embed."), ("model.transformer.ln_f.", "backbone.norm."),
          ("model.transformer.ff_out.", "head."), ("model.transformer.blocks.", "backbone.h."))
CFG = models.preset("tiny", vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden=48)


def _renamed(key: str) -> str:
    for old, new in RENAME:
        if key.startswith(old):
            return new + key[len(old):]
    raise AssertionError(f"no rename for {key}")


def _outside_family() -> families.Family:
    llada = families.get("llada")
    return families.Family(
        name=RENAMED, model_types=(RENAMED,), config_from_hf=llada.config_from_hf,
        config_to_hf=lambda cfg: {**llada.config_to_hf(cfg), "model_type": RENAMED, "architectures": ["RenamedLM"]},
        weights=families.WeightLayout(embed="backbone.embed.weight", final_norm="backbone.norm.weight",
                                      lm_head="head.weight", layer_prefix="backbone.h.{i}.", layer=llada.weights.layer))


@pytest.fixture
def registered():
    family = families.register(_outside_family())
    try:
        yield family
    finally:
        families.unregister(RENAMED)


def _tensors(folder) -> dict[str, np.ndarray]:
    with safe_open(str(folder / "model.safetensors"), "np") as f:
        return {key: f.get_tensor(key) for key in f.keys()}


@pytest.fixture
def two_layouts(tmp_path):
    """(LLaDA folder, the same weights in the outside layout)."""
    llada_dir, outside_dir = tmp_path / "llada", tmp_path / "outside"
    models.save_pretrained(models.init_model(CFG, seed=3), str(llada_dir))
    outside_dir.mkdir()
    save_file({_renamed(k): v for k, v in _tensors(llada_dir).items()}, str(outside_dir / "model.safetensors"))
    config = json.load(open(llada_dir / "config.json"))
    json.dump(dict(config, model_type=RENAMED), open(outside_dir / "config.json", "w"))
    return llada_dir, outside_dir


def test_an_outside_family_loads_to_the_logits_of_the_same_weights_as_llada(registered, two_layouts, tmp_path):
    llada_dir, outside_dir = two_layouts
    as_llada = models.from_pretrained(str(llada_dir))
    as_outside = models.from_pretrained(str(outside_dir))
    assert as_outside.cfg == as_llada.cfg.replace(family=RENAMED)
    ids = np.random.default_rng(0).integers(3, CFG.vocab_size, size=(2, 7)).astype(np.int32)
    mask = np.ones((2, 7), bool)
    mask[1, :2] = False  # a left-padded row
    assert np.array_equal(np.asarray(as_outside(ids, mask)), np.asarray(as_llada(ids, mask)))

    models.save_pretrained(as_outside, str(tmp_path / "export"))  # written back in its own layout
    exported, renamed = _tensors(tmp_path / "export"), _tensors(outside_dir)
    assert sorted(exported) == sorted(renamed)
    assert all(np.array_equal(exported[k], renamed[k]) for k in renamed)
    assert json.load(open(tmp_path / "export" / "config.json"))["architectures"] == ["RenamedLM"]
    # PEFT module paths are the weight names less ".weight": LLaDA's projection names under the new prefix
    assert peft.peft_module_names(as_outside.cfg) == peft.peft_module_names(as_llada.cfg)
    assert sorted(peft.projection_modules(as_outside.cfg)) == sorted(
        _renamed(p + ".weight").removesuffix(".weight") for p in peft.projection_modules(as_llada.cfg))
    assert rollout.resolve_schedule("auto", RENAMED, None) == "blocks"


def test_an_unregistered_family_is_refused_naming_the_known_ones(two_layouts):
    _, outside_dir = two_layouts
    with pytest.raises(CheckpointError, match=r"model_type 'renamed_llada' is not supported; expected one of "
                                              r"\('llada', 'dream', 'llama', 'qwen2'\)"):
        models.from_pretrained(str(outside_dir))
    with pytest.raises(models.ConfigError, match=r"model family 'renamed_llada' is not supported; use one of "
                                                 r"\('llada', 'dream', 'llama', 'qwen2'\)"):
        CFG.replace(family=RENAMED)


def test_the_registry_refuses_a_second_family_of_a_name_or_model_type(registered):
    with pytest.raises(models.ConfigError, match="model family 'renamed_llada' is registered twice"):
        families.register(registered)
    with pytest.raises(models.ConfigError, match=r"model_type dream \(dream\) is read by another family"):
        families.register(families.Family(name="other", model_types=("dream",), config_from_hf=dict,
                                          config_to_hf=dict, weights=registered.weights))
    assert families.names() == ("llada", "dream", "llama", "qwen2", RENAMED)
    with pytest.raises(models.ConfigError, match=r"sampler 'block_exact' is not one of \('blocks', 'dream'\)"):
        families.Family(name="other", model_types=("other",), config_from_hf=dict, config_to_hf=dict,
                        weights=registered.weights, sampler="block_exact")
    assert families.base.SAMPLERS == rollout.settings.SCHEDULES  # a family's sampler is one the rollout runs
