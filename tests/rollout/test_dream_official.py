"""sampler.dream_mask_candidate "official": Dream's sampler with the mask token kept among the candidates,
token for token against a PyTorch transcription of the model repository's generation_utils.py
(tests/rollout/dream_official_reference.py), at temperature 0 and with sampling, for the ranked orders.

The tiny model's mask-token output row is pushed along its final norm's weight, so the mask token is the
most likely token at many positions (in a random init it never is, and both behaviours would agree)."""

import json

import jax
import numpy as np
import pytest
import torch

from dlrl_jax import checkpoints, cli, models, rollout
from tests.models import hf_oracle
from tests.rollout import dream_official_reference as official
from tests.rollout import dream_reference

MASK, V = 96, 97


@pytest.fixture(scope="module")
def leaning(tmp_path_factory):
    torch_model = hf_oracle.torch_model("dream", seed=5)
    with torch.no_grad():
        for p in torch_model.parameters():
            if p.ndim >= 2:
                p.mul_(4.0)
        norm = torch_model.model.norm.weight
        torch_model.lm_head.weight[MASK] += 16.0 * norm / norm.norm()
    path = hf_oracle.write_checkpoint(torch_model, "dream", str(tmp_path_factory.mktemp("lean")), mask_token_id=MASK)
    return torch_model, models.split(checkpoints.from_pretrained(path))


def _prompts(B):
    rng = np.random.default_rng(B * 10 + 5)
    ids = rng.integers(0, MASK, (B, 5)).astype(np.int32)
    real = np.ones((B, 5), bool)
    if B > 1:
        ids[1, :2], real[1, :2] = 95, False
    return ids, real


def _settings(G, T, order, temperature=0.0, **kw):
    return rollout.SamplerSettings(gen_length=G, block_length=G, steps=T, mask_id=MASK, schedule="dream",
                                   remasking=order, temperature=temperature, dream_mask_candidate="official", **kw)


def _step_gumbel(key, B, G):
    """The Gumbel noise dlrl_jax's Dream sampler draws at step i (dlrl_jax/rollout/steps.py docstring)."""
    return lambda i: np.array(jax.random.gumbel(jax.random.split(jax.random.fold_in(key, i))[0], (B, G, V)))


# (order, B, G, T, temperature): one row at temperature 0 and with sampling per order; a padded batch of
# two rows (the count is the batch's mean, and rows come to hold different numbers of masks) for one.
CASES = [("maskgit_plus", 1, 8, 4, 0.0), ("topk_margin", 1, 8, 4, 0.0), ("entropy", 1, 8, 4, 0.0),
         ("maskgit_plus", 1, 8, 4, 1.0), ("topk_margin", 1, 8, 4, 1.0), ("entropy", 1, 8, 4, 1.0),
         ("entropy", 2, 16, 8, 0.0)]
# Each case compiles the sampler (~4 s): the padded batch in entropy order (the paper protocols') runs in the
# suite, and sampling through the CLI test below; the rest are marked slow.
FAST = {("entropy", 2, 16, 8, 0.0)}


@pytest.mark.parametrize("order,B,G,T,temperature", [
    c if c in FAST else pytest.param(*c, marks=pytest.mark.slow) for c in CASES])
def test_official_mask_candidate_matches_generation_utils_token_for_token(leaning, order, B, G, T, temperature):
    torch_model, (graphdef, params) = leaning
    ids, real = _prompts(B)
    key = jax.random.key(7)
    traj = rollout.generate(graphdef, params, ids, real, key, _settings(G, T, order, temperature).validate())
    prompt = torch.from_numpy(ids.astype(np.int64))
    want = official.diffusion_generate(torch_model, prompt.clone(), real, G, T, MASK, order, temperature,
                                       gumbel=_step_gumbel(key, B, G)).numpy()
    got = np.asarray(traj.tokens)
    np.testing.assert_array_equal(got, want)
    # The trajectory record: a position still masked was never committed, every other one once.
    unmask, completion = np.asarray(traj.unmask_step), got[:, ids.shape[1]:]
    np.testing.assert_array_equal(unmask == T, completion == MASK)
    np.testing.assert_array_equal(np.asarray(traj.step_count).sum(1), (completion != MASK).sum(1))
    if temperature == 0:  # the case is only meaningful where keeping the mask token changes the result
        excluded = dream_reference.diffusion_generate(torch_model, prompt.clone(), real, G, T, MASK, alg=order)
        assert (excluded.numpy() != want).any()


def test_official_needs_dreams_schedule_and_a_known_value():
    with pytest.raises(rollout.SamplerSettingsError, match=r"dream_mask_candidate 'official' is part of Dream's"):
        rollout.SamplerSettings(gen_length=8, block_length=8, steps=8, mask_id=MASK,
                                dream_mask_candidate="official").validate()
    with pytest.raises(rollout.SamplerSettingsError, match=r"dream_mask_candidate 'keep' is unknown"):
        rollout.SamplerSettings(gen_length=8, block_length=1, steps=4, mask_id=MASK, schedule="dream",
                                dream_mask_candidate="keep").validate()


def test_sample_cli_official_flag_decodes_as_generation_utils(leaning, tmp_path, capsys):
    """`dlrl-jax sample --dream-mask-candidate official` on the model folder: one row, sampling at
    temperature 1 in topk_margin order, token for token with the same Gumbel draws."""
    torch_model, _ = leaning
    path = hf_oracle.write_checkpoint(torch_model, "dream", str(tmp_path / "m"), mask_token_id=MASK)
    ids, real = _prompts(1)
    code = cli.main(["sample", "--model", path, "--prompt-ids", " ".join(map(str, ids[0])), "--gen-length", "8",
                     "--steps", "4", "--temperature", "1.0", "--remasking", "topk_margin", "--seed", "7",
                     "--dream-mask-candidate", "official", "--json"])
    assert code == 0
    got = np.asarray(json.loads(capsys.readouterr().out)["tokens"])
    want = official.diffusion_generate(torch_model, torch.from_numpy(ids.astype(np.int64)), real, 8, 4, MASK,
                                       "topk_margin", 1.0, gumbel=_step_gumbel(jax.random.key(7), 1, 8)).numpy()
    np.testing.assert_array_equal(got, want)
