"""Static sampler settings (a hashable jit argument), validated before anything compiles."""

from __future__ import annotations

import dataclasses

import jax

from dlrl_jax.models import families

REMASKING = ("low_confidence", "random", "origin", "maskgit_plus", "topk_margin", "entropy")
CACHES = ("none", "prefix", "dual")
SCHEDULES = ("blocks", "dream")
NOISE_DTYPES = ("float32", "bfloat16", "float64")
DREAM_MASK_CANDIDATES = ("exclude", "official")


class SamplerSettingsError(ValueError):
    """A sampler setting is invalid; the message names the field and a value that would work."""


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """The LLaDA sampler (ALGORITHMS.md §1) and its options.

    schedule: "blocks" is LLaDA's (blocks of block_length, a fixed count per step); "dream" is
    Dream's `diffusion_generate` (dlrl_jax.rollout.dream: no blocks, block_length ignored, its own
    transfer schedule over all masked positions, `steps` may exceed gen_length).
    gen_length G, block_length, steps T (a multiple of the number of blocks). temperature 0 is argmax.
    Candidates follow Dream's `sample_tokens`: logits / temperature, then top_p, then top_k.
    remasking: which positions to commit: low_confidence (softmax prob of the candidate under the raw
    logits, LLaDA's), random (uniform scores; "origin", Dream's name, is the same under blocks and
    Dream's per-position coin flips under schedule dream), or Dream's orders entropy (lowest entropy
    first), maskgit_plus (prob of the candidate after temperature/top_p/top_k), topk_margin (top-1
    minus top-2 prob). alg_temp (schedule dream, ranked orders): positions are drawn from
    softmax(confidence / alg_temp) without replacement instead of taken top-k. eps: Dream's final
    time (timesteps linspace(1, eps, T + 1)).
    dream_mask_candidate (schedule dream): "exclude" (this project's default) gives the mask token's
    logit -inf, so every committed position holds a real token and each step commits a fixed count.
    "official" keeps the mask token among the candidates as Dream's sample_tokens does: a position
    picked with the mask token as its candidate stays masked (not counted as committed), and each
    step's count is recomputed from the masks left, averaged over the batch's rows, as `_sample` does
    (dlrl_jax.rollout.dream); completions can end with masks left in them.
    noise_dtype: the Gumbel-max candidate draw at temperature > 0. float32: logits / T + Gumbel in
    log space; bfloat16: the official EGSPO / d1 / ESPO trainers' exp(logits) / (-log U)^T in the
    model's bfloat16, rounding after every operation (dlrl_jax.rollout.noise); float64: LLaDA's
    generate.py formula in float64 (needs jax_enable_x64). Schedule dream samples as
    torch.distributions.Categorical does and takes float32 only.
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
    schedule: str = "blocks"
    alg_temp: float | None = None
    eps: float = 1e-3
    noise_dtype: str = "float32"
    dream_mask_candidate: str = "exclude"

    @property
    def num_blocks(self) -> int:
        return 1 if self.schedule == "dream" else self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks

    @property
    def mask_is_candidate(self) -> bool:
        """Dream's official sample_tokens: the mask token may be drawn (and then the position stays masked)."""
        return self.dream_mask_candidate == "official"

    def validate(self) -> "SamplerSettings":
        def fail(msg):
            raise SamplerSettingsError(msg)

        if self.schedule not in SCHEDULES:
            fail(f"schedule {self.schedule!r} is unknown; use one of {SCHEDULES}")
        for name in ("gen_length", "block_length", "steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                fail(f"sampler {name} must be a positive integer, got {value!r}")
        if self.schedule == "dream":
            self._validate_dream(fail)
        elif self.gen_length % self.block_length:
            divisors = [d for d in range(1, self.gen_length + 1) if self.gen_length % d == 0]
            fail(f"gen_length {self.gen_length} is not divisible by block_length {self.block_length}; "
                 f"choose block_length from {divisors}")
        if self.steps % self.num_blocks:
            fail(f"steps {self.steps} is not a multiple of the {self.num_blocks} blocks "
                 f"(gen_length / block_length); use a multiple of {self.num_blocks}")
        if self.threshold is None and self.schedule == "blocks" and self.steps > self.gen_length:
            fail(f"steps {self.steps} exceeds gen_length {self.gen_length}: a step must commit at least one token")
        if self.remasking not in REMASKING:
            fail(f"remasking {self.remasking!r} is unknown; use one of {REMASKING}")
        if self.temperature < 0:
            fail(f"temperature must be >= 0, got {self.temperature}")
        if self.logprob_temperature <= 0:
            fail(f"logprob_temperature must be > 0, got {self.logprob_temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            fail(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k <= 0):
            fail(f"top_k must be a positive integer, got {self.top_k}")
        if self.alg_temp is not None and self.alg_temp < 0:
            fail(f"alg_temp must be >= 0 (0 or None: take the top-k positions), got {self.alg_temp}")
        if self.alg_temp and self.schedule != "dream":
            fail(f"alg_temp {self.alg_temp} is part of Dream's sampler; set schedule 'dream' or alg_temp None")
        if self.dream_mask_candidate not in DREAM_MASK_CANDIDATES:
            fail(f"dream_mask_candidate {self.dream_mask_candidate!r} is unknown; use one of {DREAM_MASK_CANDIDATES}")
        if self.mask_is_candidate and self.schedule != "dream":
            fail("dream_mask_candidate 'official' is part of Dream's sampler; set schedule 'dream' or "
                 "dream_mask_candidate 'exclude'")
        if self.noise_dtype not in NOISE_DTYPES:
            fail(f"noise_dtype {self.noise_dtype!r} is unknown; use one of {NOISE_DTYPES}")
        if self.noise_dtype == "float64" and not jax.config.jax_enable_x64:
            fail("noise_dtype float64 needs 64-bit JAX (set JAX_ENABLE_X64=1 before starting); float32 draws "
                 "the same distribution in log space")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            fail(f"threshold must be in [0, 1], got {self.threshold}")
        if self.threshold is not None and self.remasking in ("random", "origin"):
            fail("threshold decoding needs a model confidence; use remasking low_confidence or maskgit_plus")
        if self.cache not in CACHES:
            fail(f"cache {self.cache!r} is unknown; use one of {CACHES}")
        if self.cache != "none" and self.record_greedy:
            fail(f"cache {self.cache!r} computes logits for the active block only, but record_greedy needs "
                 f"every masked position's every step; use cache 'none' for EGSPO-SA rollouts")
        return self

    def _validate_dream(self, fail) -> None:
        if not 0.0 < self.eps < 1.0:
            fail(f"eps must be in (0, 1) (Dream's final time), got {self.eps}")
        if self.threshold is not None:
            fail("threshold decoding runs inside LLaDA's blocks; use schedule 'blocks' or threshold None")
        if self.cache != "none":
            fail(f"cache {self.cache!r} works block by block; schedule 'dream' has no blocks, use cache 'none'")
        if self.noise_dtype != "float32":
            fail(f"noise_dtype {self.noise_dtype!r} applies to LLaDA's Gumbel-max formula; schedule 'dream' "
                 f"samples as torch's Categorical does, use noise_dtype float32")
        if self.remasking in ("random", "origin") and self.suppress_token_ids:
            fail("suppress_token_ids needs a ranked order; Dream's origin order commits by coin flips")


def resolve_schedule(schedule: str, family: str, block_length: int | None) -> str:
    """Schedule "auto" -> the sampler of the model's family (dlrl_jax/models/families/: Dream's for Dream)
    when no block_length is given, else "blocks"."""
    if schedule == "auto":
        return families.get(family).sampler if not block_length else "blocks"
    return schedule
