"""Dream's sampler (settings.schedule "dream") against an independent PyTorch loop of Dream's
diffusion_generate (tests/rollout/dream_reference.py) over the same transformers Qwen2 weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import stats

from dlrl_jax import checkpoints, models, rollout
from dlrl_jax.rollout import dream
from tests.models import hf_oracle
from tests.rollout import dream_reference

MASK, V = 96, 97


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    torch_model = hf_oracle.torch_model("dream", seed=5)
    with torch.no_grad():  # a random init is nearly position-blind; larger weights separate the confidences
        for p in torch_model.parameters():
            if p.ndim >= 2:
                p.mul_(4.0)
    path = hf_oracle.write_checkpoint(torch_model, "dream", str(tmp_path_factory.mktemp("dream")), mask_token_id=MASK)
    return torch_model, models.split(checkpoints.from_pretrained(path)), path


def _prompts(B=2, P=5, pad=True):
    rng = np.random.default_rng(B * 10 + P)
    ids = rng.integers(0, MASK, (B, P)).astype(np.int32)
    real = np.ones((B, P), bool)
    if pad and B > 1:
        ids[1, :2], real[1, :2] = 95, False
    return ids, real


def _dream(**kw):
    return rollout.SamplerSettings(**dict(dict(block_length=1, mask_id=MASK, schedule="dream"), **kw))


CASES = [(order, top_p, per_step) for order in ("maskgit_plus", "topk_margin", "entropy")
         for top_p in (None, 0.9) for per_step in (1, 2, 4)]
FAST = {("maskgit_plus", None, 2), ("topk_margin", 0.9, 1), ("entropy", 0.9, 4), ("entropy", None, 1)}


@pytest.mark.parametrize("order,top_p,per_step", [
    c if c in FAST else pytest.param(*c, marks=pytest.mark.slow) for c in CASES])
def test_temperature_zero_matches_dream_token_for_token(pair, order, top_p, per_step):
    torch_model, (graphdef, params), _ = pair
    ids, real = _prompts()
    G = 8
    settings = _dream(gen_length=G, steps=G // per_step, remasking=order, top_p=top_p)
    traj = rollout.generate(graphdef, params, ids, real, jax.random.key(0), settings)
    want = dream_reference.diffusion_generate(torch_model, torch.from_numpy(ids.astype(np.int64)), real, G,
                                              G // per_step, MASK, alg=order, top_p=top_p)
    np.testing.assert_array_equal(np.asarray(traj.tokens), want.numpy())
    np.testing.assert_array_equal(np.asarray(traj.step_count)[0], dream.transfer_counts(G, G // per_step, 1e-3))


def test_top_p_changes_the_order(pair):
    """The case grid above is only meaningful if top_p 0.9 changes some decision of the reference."""
    torch_model, _, _ = pair
    ids, real = _prompts()
    prompt = torch.from_numpy(ids.astype(np.int64))
    outputs = {p: dream_reference.diffusion_generate(torch_model, prompt, real, 8, 4, MASK, "entropy", top_p=p)
               for p in (None, 0.9)}
    assert (outputs[None] != outputs[0.9]).any()


def test_transfer_counts_equal_torch_schedule():
    """The host schedule equals the reference's float32 torch arithmetic for many (G, T)."""
    for G in (1, 2, 5, 8, 16, 31, 64, 256):
        for T in sorted({1, 2, 3, max(1, G // 4), max(1, G // 2), G, 2 * G}):
            t = torch.linspace(1, 1e-3, T + 1)
            n, want = G, []
            for i in range(T):
                k = int(torch.tensor(float(n)) * (1 - t[i + 1] / t[i])) if i < T - 1 else n
                want.append(k)
                n -= k
            np.testing.assert_array_equal(dream.transfer_counts(G, T, 1e-3), want, err_msg=f"G={G} T={T}")
            np.testing.assert_array_equal(dream.timesteps(T, 1e-3), t.numpy())
    # Dream's schedule is not LLaDA's: two tokens per step starts with one and ends with three.
    assert dream.transfer_counts(32, 16, 1e-3).tolist() == [1] + [2] * 14 + [3]


def _first_position_logits(torch_model, ids, G):
    canvas = np.concatenate([ids, np.full((ids.shape[0], G), MASK)], axis=1)
    logits = torch.from_numpy(hf_oracle.torch_logits(torch_model, canvas, "dream"))[:, ids.shape[1]:]
    logits[..., MASK] = -torch.inf
    return logits


def _chi_square(counts, probs, n):
    keep = probs * n >= 5  # expected counts >= 5; the rest pooled
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(probs[keep] * n, probs[~keep].sum() * n)
    if expected[-1] < 5:
        observed, expected = observed[:-1], expected[:-1] * observed[:-1].sum() / expected[:-1].sum()
    return stats.chisquare(observed, expected).pvalue


def test_temperature_sampling_follows_dreams_filtered_distribution(pair):
    """One position, temperature 0.8, top_p 0.9, top_k 20: the committed token's distribution is the
    reference's softmax(top_k(top_p(logits / 0.8)))."""
    torch_model, (graphdef, params), _ = pair
    ids, real = _prompts(B=1, P=4, pad=False)
    settings = _dream(gen_length=1, steps=1, remasking="entropy", temperature=0.8, top_p=0.9, top_k=20)
    n = 2500
    sample = jax.jit(jax.vmap(lambda k: rollout.generate(graphdef, params, ids, real, k, settings).completion[0, 0]))
    counts = np.bincount(np.asarray(sample(jax.random.split(jax.random.key(1), n))), minlength=V)
    probs = dream_reference.filtered_probs(_first_position_logits(torch_model, ids, 1)[0].double(), 0.8, 0.9,
                                           20)[0].numpy()
    assert (counts[probs == 0] == 0).all() and (probs > 0).sum() > 2  # the filters cut, and not to one token
    assert _chi_square(counts, probs, n) > 1e-3


def test_alg_temp_draws_positions_from_softmax_of_confidence(pair):
    """G 4, T 2 commits one position at step 0, drawn from softmax(confidence / alg_temp) over the
    masked positions (torch.multinomial in the reference)."""
    torch_model, (graphdef, params), _ = pair
    ids, real = _prompts(B=1, P=4, pad=False)
    alg_temp = 0.05
    settings = _dream(gen_length=4, steps=2, remasking="entropy", alg_temp=alg_temp)
    assert dream.transfer_counts(4, 2, 1e-3).tolist() == [1, 3]
    n = 2000
    first = jax.jit(jax.vmap(lambda k: jnp.argmin(rollout.generate(graphdef, params, ids, real, k,
                                                                   settings).unmask_step[0])))
    counts = np.bincount(np.asarray(first(jax.random.split(jax.random.key(2), n))), minlength=4)
    logits = _first_position_logits(torch_model, ids, 4)[0].double()
    confidence, _ = dream_reference.confidence_and_tokens(logits, "entropy", 0.0, None, None)
    probs = torch.softmax(confidence / alg_temp, dim=-1).numpy()
    assert probs.max() < 0.9 and (probs * n >= 5).sum() >= 2  # a real choice, not a certainty
    assert _chi_square(counts, probs, n) > 1e-3


def test_origin_commits_each_position_with_probability_one_minus_s_over_t(pair):
    _, (graphdef, params), _ = pair
    ids, real = _prompts()
    G, T = 8, 4
    settings = _dream(gen_length=G, steps=T, remasking="origin", temperature=1.0)
    trajs = jax.jit(jax.vmap(lambda k: rollout.generate(graphdef, params, ids, real, k, settings).unmask_step))(
        jax.random.split(jax.random.key(3), 200))
    unmask = np.asarray(trajs)  # [n, B, G]
    t = np.linspace(1, 1e-3, T + 1)
    for s in range(T):
        still = unmask >= s  # masked before step s
        rate = (unmask[still] == s).mean()
        want = 1.0 if s == T - 1 else 1 - t[s + 1] / t[s]
        assert abs(rate - want) < 4 * np.sqrt(want * (1 - want) / still.sum()) + 1e-9, (s, rate, want)
    assert (unmask < T).all()


def test_records_equal_fresh_forward_passes_at_rebuilt_states(pair):
    """The trajectory record under Dream's schedule (temperature 1, top_p, greedy completions): every
    step's log-prob, entropy and greedy completion equal a fresh PyTorch forward at the rebuilt state."""
    torch_model, (graphdef, params), _ = pair
    ids, real = _prompts()
    G, T = 8, 4
    settings = _dream(gen_length=G, steps=T, remasking="entropy", temperature=1.0, top_p=0.95, record_greedy=True)
    traj = rollout.generate(graphdef, params, ids, real, jax.random.key(4), settings)
    P = ids.shape[1]
    unmask = np.asarray(traj.unmask_step)
    np.testing.assert_array_equal(np.asarray(traj.step_count), (unmask[:, None, :] == np.arange(T)[:, None]).sum(2))
    np.testing.assert_array_equal(np.asarray(traj.step_count)[0], dream.transfer_counts(G, T, 1e-3))
    attention = np.concatenate([real, np.ones((2, G), bool)], axis=1)
    for s in range(T):
        state = np.asarray(rollout.state_before_step(traj, s, MASK))
        logits = hf_oracle.torch_logits(torch_model, state, "dream", attention).astype(np.float64)[:, P:]
        logp = logits - logits.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        entropy = -(np.exp(logp) * logp).sum(-1)
        committed = unmask == s
        tok_logp = np.take_along_axis(logp, np.asarray(traj.completion)[..., None], -1)[..., 0]
        np.testing.assert_allclose(traj.step_logprob[:, s], (tok_logp * committed).sum(1), atol=2e-4)
        np.testing.assert_allclose(traj.step_entropy[:, s],
                                   (entropy * committed).sum(1) / np.maximum(committed.sum(1), 1), atol=2e-4)
        logits[..., MASK] = -np.inf
        greedy = np.where(state[:, P:] == MASK, logits.argmax(-1), state[:, P:])
        np.testing.assert_array_equal(np.asarray(traj.greedy[:, s]), greedy)


@pytest.mark.parametrize("changes,message", [
    (dict(threshold=0.9), r"threshold decoding runs inside LLaDA's blocks"),
    (dict(cache="dual"), r"cache 'dual' works block by block"),
    (dict(noise_dtype="bfloat16"), r"schedule 'dream' samples as torch's Categorical does"),
    (dict(eps=0.0), r"eps must be in \(0, 1\)"),
    (dict(alg_temp=-1.0), r"alg_temp must be >= 0"),
    (dict(schedule="fancy"), r"schedule 'fancy' is unknown"),
])
def test_dream_settings_errors(changes, message):
    with pytest.raises(rollout.SamplerSettingsError, match=message):
        _dream(**dict(dict(gen_length=8, steps=4), **changes)).validate()


def test_dream_allows_more_steps_than_tokens_and_blocks_refuse_alg_temp():
    _dream(gen_length=4, steps=16).validate()  # Dream's default is steps = max_new_tokens, more is allowed
    with pytest.raises(rollout.SamplerSettingsError, match=r"alg_temp 0.5 is part of Dream's sampler"):
        rollout.SamplerSettings(gen_length=8, block_length=8, steps=8, mask_id=MASK, alg_temp=0.5).validate()
    assert rollout.resolve_schedule("auto", "dream", None) == "dream"
    assert rollout.resolve_schedule("auto", "dream", 32) == "blocks"
    assert rollout.resolve_schedule("auto", "llada", None) == "blocks"
