#!/usr/bin/env bash
# The official trainers' environments (one venv each, outside this repository) and the shared tiny model
# folder. Nothing of the official repositories is copied into this repository: the user passes clones
# they made themselves, and LLaDA's modeling code is copied into the model folder only.
#
#   bash bench/official/setup.sh --egspo-repo CLONE [--espo-repo CLONE] [--d1-repo CLONE] \
#        --llada-code DIR [--envs /work/official_envs] [--model /work/official_model] [--python PY]
#
# --llada-code: a folder holding LLaDA's Hugging Face modeling code, modeling_llada.py and
#   configuration_llada.py (they ship with GSAI-ML/LLaDA-8B-Instruct; REPRODUCTION.md names the public
#   repositories the harness was run with).
# --python: this project's interpreter (builds the model folder with dlrl_jax); default: python.
# Versions: what each repository pins, or the nearest release where it pins a git commit; torch 2.13.0 CPU.
set -euo pipefail

ENVS=/work/official_envs
MODEL=/work/official_model
PYTHON=python
EGSPO_REPO="" ESPO_REPO="" D1_REPO="" LLADA_CODE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --egspo-repo) EGSPO_REPO=$2; shift 2 ;;
    --espo-repo) ESPO_REPO=$2; shift 2 ;;
    --d1-repo) D1_REPO=$2; shift 2 ;;
    --llada-code) LLADA_CODE=$2; shift 2 ;;
    --envs) ENVS=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --python) PYTHON=$2; shift 2 ;;
    *) echo "setup.sh: unknown argument $1 (see the header of bench/official/setup.sh)" >&2; exit 2 ;;
  esac
done
if [ -z "$LLADA_CODE" ]; then
  echo "setup.sh: --llada-code DIR is required (a folder with modeling_llada.py and configuration_llada.py)" >&2
  exit 2
fi

# egspo-dllm-rl environment.yml pins these (bitsandbytes and deepspeed left out: CUDA only / unused here).
EGSPO_PINS="torch==2.13.0 trl==0.16.0 transformers==4.57.1 peft==0.17.1 accelerate==1.11.0 datasets==4.2.0 wandb==0.22.2"
# ESPO setup.py pins trl and transformers to git commits: their nearest releases, and its accelerate/peft.
# (latex2sympy2_extended and math-verify: its setup.py's, imported by espo/rewards.py, which the curves load)
ESPO_PINS="torch==2.13.0 trl==0.17.0 transformers==4.52.4 peft==0.17.0 accelerate==1.4.0 datasets wandb latex2sympy2_extended>=1.0.6 math-verify==0.5.2"
# d1 env.yml: transformers 4.49.0, accelerate 1.4.0, peft 0.15.1, datasets 3.3.2; trl from a git commit
# between 0.15.2 (lacks num_iterations, which d1 uses) and 0.16.0 (run_d1.py supplies the two config fields
# 0.16.0 reads that d1's config lacks).
D1_PINS="torch==2.13.0 trl==0.16.0 transformers==4.49.0 peft==0.15.1 accelerate==1.4.0 datasets==3.3.2 wandb"

make_env() {  # name, clone, pins
  local name=$1 clone=$2 pins=$3
  [ -z "$clone" ] && return 0
  if [ ! -d "$clone" ]; then
    echo "setup.sh: --$name-repo $clone is not a folder; pass a clone of the official repository" >&2
    exit 2
  fi
  if [ ! -x "$ENVS/$name/bin/python" ]; then
    python3 -m venv "$ENVS/$name"
  fi
  # shellcheck disable=SC2086
  "$ENVS/$name/bin/pip" install -q $pins
  echo "$name: $("$ENVS/$name/bin/python" -c 'import torch, trl, transformers; print("torch", torch.__version__, "trl", trl.__version__, "transformers", transformers.__version__)')"
}

mkdir -p "$ENVS"
make_env egspo "$EGSPO_REPO" "$EGSPO_PINS"
make_env espo "$ESPO_REPO" "$ESPO_PINS"
make_env d1 "$D1_REPO" "$D1_PINS"

HERE=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$HERE" && PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m bench.official.model_folder \
  --out "$MODEL" --llada-code "$LLADA_CODE")
