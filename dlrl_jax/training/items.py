"""Typed update items: what one accumulated gradient step of each objective reads, as flax structs.

Each field has a declared shape in named dimensions (`SHAPES`); `validate()` checks a stack of items
against them (any leading axes shared by every field: optimizer steps, accumulated items) and raises
a one-line `ItemError` naming the field, its shape and what was expected. The items read like the
string-keyed batches the objectives' losses take (`item["tokens"]`, `"dropout_key" in item`,
`item.get("row_offset", 0)`): a field that is None is absent.

Dimensions: B rows of the item, P prompt, G completion, L = P + G, D key data (2 for threefry).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import struct


class ItemError(ValueError):
    """An update item whose fields do not have the declared shapes."""


class Item:
    """Mapping access and shape validation for the item structs below; an objective registered from
    outside the package subclasses it for its own items (a flax struct with `SHAPES`)."""

    SHAPES: dict = {}

    def __getitem__(self, name):
        value = getattr(self, name, None) if name in self.SHAPES else None
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name) -> bool:
        return name in self.SHAPES and getattr(self, name) is not None

    def get(self, name, default=None):
        return self[name] if name in self else default

    def keys(self):
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def items(self):
        return [(k, getattr(self, k)) for k in self.keys()]

    def validate(self):
        """Raises ItemError (one line) unless every present field has its declared shape with the same
        leading axes; returns self."""
        dims: dict = {}
        lead = None
        name = type(self).__name__
        for field, spec in self.SHAPES.items():
            value = getattr(self, field)
            if value is None:
                continue
            shape = tuple(np.shape(value))
            if len(shape) < len(spec):
                raise ItemError(f"{name}.{field}: shape {list(shape)}, expected [..., {', '.join(spec)}]")
            here = shape[:len(shape) - len(spec)]
            if lead is None:
                lead = here
            elif here != lead:
                raise ItemError(f"{name}.{field}: leading axes {list(here)}, the other fields have {list(lead)}")
            for dim, size in zip(spec, shape[len(here):]):
                if dims.setdefault(dim, size) != size:
                    raise ItemError(f"{name}.{field}: shape {list(shape)} has {dim} = {size}, other fields "
                                    f"{dim} = {dims[dim]}")
        if {"L", "P", "G"} <= dims.keys() and dims["L"] != dims["P"] + dims["G"]:
            raise ItemError(f"{name}.tokens: L = {dims['L']} is not P + G = {dims['P']} + {dims['G']}")
        return self


@struct.dataclass
class StepwiseItem(Item):
    """EGSPO / EGSPO-SA (`objectives.stepwise.stepwise_loss`): one selected-step column of a micro-batch."""

    tokens: jax.Array               # [B, L] int32: prompt + final completion
    prompt_mask: jax.Array          # [B, P] bool
    unmask_step: jax.Array          # [B, G] int32
    step: jax.Array                 # [B] int32: the selected step of each row
    valid: jax.Array                # [B] bool
    advantage: jax.Array            # [B] float32
    old_logprob: jax.Array          # [B] float32: the rollout's log-prob of the step
    ref_logprob: jax.Array          # [B] float32
    dropout_key: jax.Array | None = None  # [D] raw key data (LoRA dropout)
    row_weight: jax.Array | None = None   # [B] float32 (algorithm.zero_variance_groups=drop)

    SHAPES = {"tokens": ("B", "L"), "prompt_mask": ("B", "P"), "unmask_step": ("B", "G"), "step": ("B",),
              "valid": ("B",), "advantage": ("B",), "old_logprob": ("B",), "ref_logprob": ("B",),
              "dropout_key": ("D",), "row_weight": ("B",)}


@struct.dataclass
class ESPOItem(Item):
    """ESPO (`objectives.espo.espo_loss`): one micro-batch under one mask draw."""

    prompt_ids: jax.Array           # [B, P] int32
    prompt_mask: jax.Array          # [B, P] bool
    completion_ids: jax.Array       # [B, G] int32
    advantage: jax.Array            # [B] float32
    key: jax.Array                  # [D] raw key data of the mask draw (shared with old / ref)
    old_elbo: jax.Array             # [B] float32
    ref_elbo: jax.Array             # [B] float32
    row_offset: jax.Array | None = None   # [] int32: the micro-batch's first global row (elbo_strata)
    dropout_key: jax.Array | None = None  # [D]
    row_weight: jax.Array | None = None   # [B] float32 (algorithm.zero_variance_groups=drop)

    SHAPES = {"prompt_ids": ("B", "P"), "prompt_mask": ("B", "P"), "completion_ids": ("B", "G"),
              "advantage": ("B",), "key": ("D",), "old_elbo": ("B",), "ref_elbo": ("B",), "row_offset": (),
              "dropout_key": ("D",), "row_weight": ("B",)}


@struct.dataclass
class DiffuGRPOItem(Item):
    """diffu-GRPO (`objectives.diffu_grpo.diffu_grpo_loss`): one micro-batch under one prompt mask."""

    prompt_ids: jax.Array           # [B, P] int32
    prompt_mask: jax.Array          # [B, P] bool
    completion_ids: jax.Array       # [B, G] int32
    completion_mask: jax.Array      # [B, G] bool: up to and including the first EOS
    advantage: jax.Array            # [B] float32
    key: jax.Array                  # [D] raw key data of the prompt mask
    old_logprob: jax.Array          # [B, G] float32
    ref_logprob: jax.Array          # [B, G] float32
    dropout_key: jax.Array | None = None  # [D]
    row_weight: jax.Array | None = None   # [B] float32 (algorithm.zero_variance_groups=drop)

    SHAPES = {"prompt_ids": ("B", "P"), "prompt_mask": ("B", "P"), "completion_ids": ("B", "G"),
              "completion_mask": ("B", "G"), "advantage": ("B",), "key": ("D",), "old_logprob": ("B", "G"),
              "ref_logprob": ("B", "G"), "dropout_key": ("D",), "row_weight": ("B",)}


@struct.dataclass
class WD1Item(Item):
    """wd1 (`objectives.wd1.wd1_loss`): one micro-batch under one prompt mask."""

    prompt_ids: jax.Array           # [B, P] int32
    prompt_mask: jax.Array          # [B, P] bool
    completion_ids: jax.Array       # [B, G] int32
    completion_mask: jax.Array      # [B, G] bool
    weight: jax.Array               # [B] float32: w+ - w- of the row's group
    key: jax.Array                  # [D] raw key data of the prompt mask
    dropout_key: jax.Array | None = None  # [D]

    SHAPES = {"prompt_ids": ("B", "P"), "prompt_mask": ("B", "P"), "completion_ids": ("B", "G"),
              "completion_mask": ("B", "G"), "weight": ("B",), "key": ("D",), "dropout_key": ("D",)}
