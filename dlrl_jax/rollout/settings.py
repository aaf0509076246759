"""Static sampler settings (a hashable jit argument), validated before anything compiles."""

from __future__ import annotations

import dataclasses

REMASKING = ("low_confidence", "random", "entropy", "maskgit_plus", "topk_margin")
CACHES = ("none", "prefix", "dual")


class SamplerSettingsError(ValueError):
    """A sampler setting is invalid; the message names the field and a value that would work."""


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """The LLaDA sampler (ALGORITHMS.md §1) and its options.

    gen_length G, block_length, steps T (a multiple of the number of blocks). temperature 0 is argmax.
    remasking: which positions to commit: low_confidence (softmax prob of the candidate), random,
    or Dream's orders entropy (lowest entropy first), maskgit_plus (prob after top_p/top_k and
    temperature), topk_margin (top-1 minus top-2 prob). top_p / top_k filter the sampling logits.
    suppress_token_ids: candidates equal to these ids (EOS/EoT) get confidence -inf, so they are
    committed only when nothing else is left. logprob_temperature: the softmax temperature of the
    recorded behaviour log-probs (1.0, as in the reference code). record_greedy: record the one-step
    greedy completion at every step. threshold: confidence-threshold parallel decoding (commit every
    masked token of the active block whose confidence >= threshold, at least one per step; rows
    finish independently; `steps` is then the maximum number of steps).
    cache: Fast-dLLM's approximate KV cache. "none" runs the full sequence every step (exact).
    "prefix": the first step of each block runs the full sequence and keeps every layer's keys and
    values; the block's later steps recompute only the block and everything after it, attending to
    the kept keys/values of the positions before the block. "dual": the later steps recompute only the
    block; the kept keys/values of both the prefix and the suffix stand in for theirs. Blocks then
    advance in lockstep across rows (with threshold decoding too); no greedy records.
    """

    gen_length: int
    block_length: int
    steps: int
    mask_id: int
    temperature: float = 0.0
    remasking: str = "low_confidence"
    cfg_scale: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    suppress_token_ids: tuple[int, ...] = ()
    logprob_temperature: float = 1.0
    record_greedy: bool = False
    threshold: float | None = None
    cache: str = "none"

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks

    def validate(self) -> "SamplerSettings":
        def fail(msg):
            raise SamplerSettingsError(msg)

        for name in ("gen_length", "block_length", "steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                fail(f"sampler {name} must be a positive integer, got {value!r}")
        if self.gen_length % self.block_length:
            divisors = [d for d in range(1, self.gen_length + 1) if self.gen_length % d == 0]
            fail(f"gen_length {self.gen_length} is not divisible by block_length {self.block_length}; "
                 f"choose block_length from {divisors}")
        if self.steps % self.num_blocks:
            fail(f"steps {self.steps} is not a multiple of the {self.num_blocks} blocks "
                 f"(gen_length / block_length); use a multiple of {self.num_blocks}")
        if self.threshold is None and self.steps > self.gen_length:
            fail(f"steps {self.steps} exceeds gen_length {self.gen_length}: a step must commit at least one token")
        if self.remasking not in REMASKING:
            fail(f"remasking {self.remasking!r} is unknown; use one of {REMASKING}")
        if self.temperature < 0:
            fail(f"temperature must be >= 0, got {self.temperature}")
        if self.logprob_temperature <= 0:
            fail(f"logprob_temperature must be > 0, got {self.logprob_temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            fail(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k <= 0:
            fail(f"top_k must be a positive integer, got {self.top_k}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            fail(f"threshold must be in [0, 1], got {self.threshold}")
        if self.threshold is not None and self.remasking == "random":
            fail("threshold decoding needs a model confidence; use remasking low_confidence or maskgit_plus")
        if self.cache not in CACHES:
            fail(f"cache {self.cache!r} is unknown; use one of {CACHES}")
        if self.cache != "none" and self.record_greedy:
            fail(f"cache {self.cache!r} computes logits for the active block only, but record_greedy needs "
                 f"every masked position's every step; use cache 'none' for EGSPO-SA rollouts")
        return self
