"""Logit parity with transformers' Llama / Qwen2 run bidirectionally, for every checkpoint layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import checkpoints
from tests.models import hf_oracle


@pytest.fixture(scope="module", params=["llada", "dream", "llama", "qwen2"])
def pair(request, tmp_path_factory):
    family = request.param
    torch_model = hf_oracle.torch_model(family, seed=3)
    path = hf_oracle.write_checkpoint(torch_model, family, str(tmp_path_factory.mktemp(family)))
    return family, torch_model, checkpoints.from_pretrained(path)


@pytest.mark.parametrize("batch,length", [(1, 5), (3, 17), (2, 33)])
def test_logits_match_pytorch_bidirectional(pair, batch, length):
    family, torch_model, model = pair
    ids = np.random.default_rng(batch * 100 + length).integers(0, 97, (batch, length))
    want = hf_oracle.torch_logits(torch_model, ids, family)
    got = np.asarray(model(jnp.asarray(ids, jnp.int32)))
    assert got.dtype == np.float32 and got.shape == (batch, length, 97)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0,
                               err_msg=f"{family} logits differ from the PyTorch reference")


def test_left_padding_matches_pytorch_and_unpadded(pair):
    family, torch_model, model = pair
    rng = np.random.default_rng(7)
    ids = rng.integers(3, 97, (3, 12))
    real = np.ones_like(ids, bool)
    real[1, :4] = False
    real[2, :9] = False
    ids_padded = np.where(real, ids, 0)
    got = np.asarray(model(jnp.asarray(ids_padded, jnp.int32), jnp.asarray(real)))
    want = hf_oracle.torch_logits(torch_model, ids_padded, family, real)
    # Dream's position 0 of a padded row is a pad; compare real positions only.
    np.testing.assert_allclose(got[real], want[real], atol=1e-4, rtol=0)
    for row in (1, 2):
        alone = np.asarray(model(jnp.asarray(ids[row:row + 1, real[row]], jnp.int32)))[0]
        shift = 1 if family == "dream" else 0  # the first real token's prediction uses a pad under Dream
        np.testing.assert_allclose(got[row][real[row]][shift:], alone[shift:], atol=1e-5, rtol=0)
