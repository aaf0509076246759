"""How often bfloat16 confidences change which positions Dream's ranked orders commit (FIDELITY.md,
ESPO table, "Dream: confidence precision"): Dream's generation_utils.py computes `sample_tokens` on the
logits in the model's dtype and keeps the confidences in that dtype; dlrl_jax computes both in float32.

    PYTHONPATH=. python bench/dream_confidence_ties.py

The tiny Dream model of tests/rollout/test_dream_sampler.py (seed 5, matrices x4); 40 canvases of a
6-token prompt and 32 completion positions, a random half of them decoded; per order, whether any two
masked positions' bf16 confidences tie, and whether the top quarter of the masked positions by bf16
confidence differs from the one by float32 confidence (the transcription of sample_tokens in
tests/rollout/dream_official_reference.py, temperature 0, no top_p / top_k).
"""

import numpy as np
import torch

from tests.models import hf_oracle
from tests.rollout import dream_official_reference as official

MASK, G, CANVASES = 96, 32, 40


def main():
    model = hf_oracle.torch_model("dream", seed=5)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_(4.0)
    rng = np.random.default_rng(0)
    orders = ("maskgit_plus", "topk_margin", "entropy")
    ties, differ = dict.fromkeys(orders, 0), dict.fromkeys(orders, 0)
    for _ in range(CANVASES):
        canvas = np.concatenate([rng.integers(0, MASK, (1, 6)), np.full((1, G), MASK)], 1)
        decoded = rng.random(G) < 0.5
        canvas[0, 6:][decoded] = rng.integers(0, MASK, decoded.sum())
        logits = torch.from_numpy(hf_oracle.torch_logits(model, canvas, "dream"))[0, 6:][torch.from_numpy(~decoded)]
        k = max(1, logits.shape[0] // 4)
        for order in orders:
            c32, _ = official.sample_tokens(logits.float(), order, 0.0, None, None)
            c16, _ = official.sample_tokens(logits.bfloat16(), order, 0.0, None, None)
            ties[order] += int(len(torch.unique(c16)) < len(c16))
            top32 = set(torch.topk(c32, k).indices.tolist())
            top16 = set(torch.topk(c16.float(), k).indices.tolist())
            differ[order] += int(top32 != top16)
    print("| order | canvases with tied bf16 confidences | bf16 top quarter differs from float32 |")
    print("|---|---|---|")
    for order in orders:
        print(f"| {order} | {ties[order]}/{CANVASES} | {differ[order]}/{CANVASES} |")


if __name__ == "__main__":
    main()
