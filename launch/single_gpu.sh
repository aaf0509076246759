#!/usr/bin/env bash
# One GPU (or one host with several): dlrl-jax train with the config, resuming from the newest
# checkpoint if the run folder has one (so rerunning after a crash or preemption continues).
#
#   CONFIG=configs/paper/llada8b_gsm8k_egspo_sa.yaml launch/single_gpu.sh [--set key=value ...]
#   DRY_RUN=1 ...   prints the command instead of running it
set -euo pipefail
: "${CONFIG:?set CONFIG to a YAML config, e.g. configs/paper/llada8b_gsm8k_egspo_sa.yaml}"
# JAX may take most of the GPU memory up front; the compiled update knows what it needs.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}"
cmd=(dlrl-jax train --config "$CONFIG" --resume-or-start "$@")
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  echo "XLA_PYTHON_CLIENT_MEM_FRACTION=$XLA_PYTHON_CLIENT_MEM_FRACTION ${cmd[*]}"
else
  exec "${cmd[@]}"
fi
