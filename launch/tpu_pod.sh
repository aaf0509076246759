#!/usr/bin/env bash
# A Cloud TPU pod slice (TPU VM): the same command on every worker at once, over gcloud ssh. JAX
# discovers the other workers itself (dlrl_jax.parallel.distributed.initialize); the mesh spans every
# chip of the slice. The repository must be checked out and installed at REPO on every worker
# (see SETUP below), with the run folder on storage every worker can reach for checkpoints.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b CONFIG=configs/paper/llada8b_sudoku_espo.yaml launch/tpu_pod.sh [--set k=v ...]
#   SETUP=1 ...     installs the repository on every worker first (git clone + pip install)
#   DRY_RUN=1 ...   prints the gcloud commands instead of running them
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE to its zone}"
: "${CONFIG:?set CONFIG to a YAML config}"
REPO="${REPO:-~/dlrl_jax}"
GIT_URL="${GIT_URL:-$(git config --get remote.origin.url 2>/dev/null || echo 'https://example.invalid/dlrl_jax.git')}"
quote() { local out; printf -v out '%q ' "$@"; printf '%s' "${out% }"; }  # shell-quoted, space-joined
train="cd $REPO && dlrl-jax train --config $(quote "$CONFIG") --resume-or-start${*:+ $(quote "$@")}"
setup="git clone $GIT_URL $REPO 2>/dev/null || git -C $REPO pull; cd $REPO && pip install -e . 'jax[tpu]'"
run() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then echo "$(quote "$@")"; else "$@"; fi
}
if [[ "${SETUP:-0}" == 1 ]]; then
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "$setup"
fi
run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "$train"
