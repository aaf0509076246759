"""`rescore --protocol d1` on d1's released LLaDA-8B-Instruct generations gives the numbers d1's own
parse_and_get_acc.py prints for them (run on the same files; FIDELITY.md "Evaluation protocols").

The files are d1's (dllm-reasoning/d1 eval/eval_baselines/*.json, 11 MB) and are not part of this
repository: extract them to a folder and point DLRL_D1_EVAL_BASELINES at it, e.g.
    for f in $(git --git-dir=D1_MIRROR ls-tree -r --name-only HEAD eval/eval_baselines/); do
        git --git-dir=D1_MIRROR show HEAD:$f > /tmp/d1_gens/$(basename $f); done
Without it the test is skipped."""

import glob
import os

import pytest

from dlrl_jax.protocols.rescore import rescore

FOLDER = os.environ.get("DLRL_D1_EVAL_BASELINES", "")

# setup -> (correct, total) as d1's parse_and_get_acc.py counts them (Sudoku: cells)
OFFICIAL = {
    "gsm8k_instruct_128_64": (783, 1130), "gsm8k_instruct_256_128": (863, 1130),
    "gsm8k_instruct_512_256": (883, 1130),
    "math500_instruct_128_64": (130, 500), "math500_instruct_256_128": (162, 500),
    "math500_instruct_512_256": (181, 500),
    "countdown_instruct_128_64": (53, 256), "countdown_instruct_256_128": (50, 256),
    "countdown_instruct_512_256": (41, 256),
    "sudoku_instruct_128_64": (240, 2048), "sudoku_instruct_256_128": (137, 2048),
    "sudoku_instruct_512_256": (112, 2048),
}


@pytest.mark.skipif(not os.path.isdir(FOLDER), reason="set DLRL_D1_EVAL_BASELINES to d1's eval_baselines files")
@pytest.mark.parametrize("setup", sorted(OFFICIAL))
def test_d1_released_generations_give_the_official_counts(setup):
    task = {"gsm8k": "gsm8k", "math500": "math", "countdown": "countdown", "sudoku": "sudoku"}[setup.split("_")[0]]
    files = sorted(glob.glob(os.path.join(FOLDER, f"{setup}_*_generations.json")))
    result = rescore("d1", task, files, note=lambda _: None)
    assert (result["correct"], result["total"]) == OFFICIAL[setup]
