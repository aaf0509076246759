#!/usr/bin/env bash
# Item 3 of issue 27 end to end: each official trainer's one recorded iteration (in its own venv), then its
# replay through dlrl_jax with the trainer's weight-decay rule and with dlrl_jax's own (REPRODUCTION.md).
#   bash bench/official/run_all.sh --egspo-repo C --espo-repo C --d1-repo C [--envs DIR] [--model DIR]
#        [--out DIR] [--python PY]
# Run bench/official/setup.sh first. Exit status: non-zero if any replay (with the trainer's rule) is out
# of tolerance or any step fails.
set -euo pipefail
ENVS=/work/official_envs
MODEL=/work/official_model
OUT=/work/official_runs
PYTHON=python
EGSPO_REPO="" ESPO_REPO="" D1_REPO=""
while [ $# -gt 0 ]; do
  case "$1" in
    --egspo-repo) EGSPO_REPO=$2; shift 2 ;;
    --espo-repo) ESPO_REPO=$2; shift 2 ;;
    --d1-repo) D1_REPO=$2; shift 2 ;;
    --envs) ENVS=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --python) PYTHON=$2; shift 2 ;;
    *) echo "run_all.sh: unknown argument $1 (see the header of bench/official/run_all.sh)" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
cd "$HERE"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
status=0
replay() {  # module, recording, the trainer's decay rule
  echo "== $1 (the trainer's weight-decay rule: $3)"
  "$PYTHON" -m "bench.official.$1" --recording "$2" --model "$MODEL" --decay-rule "$3" --markdown || status=1
  echo "== $1 (dlrl_jax's weight-decay rule)"
  "$PYTHON" -m "bench.official.$1" --recording "$2" --model "$MODEL" --markdown || true
}
if [ -n "$EGSPO_REPO" ]; then
  "$ENVS/egspo/bin/python" bench/official/run_egspo.py --egspo-repo "$EGSPO_REPO" --model "$MODEL" \
    --out "$OUT/egspo_f32.npz" > "$OUT/egspo_f32.log" 2>&1
  replay egspo_replay "$OUT/egspo_f32.npz" names
  "$ENVS/egspo/bin/python" bench/official/run_egspo.py --egspo-repo "$EGSPO_REPO" --model "$MODEL" \
    --lambda1 0.5 --out "$OUT/egspo_sa_f32.npz" > "$OUT/egspo_sa_f32.log" 2>&1
  replay egspo_replay "$OUT/egspo_sa_f32.npz" names
  "$ENVS/egspo/bin/python" bench/official/run_egspo.py --egspo-repo "$EGSPO_REPO" --model "$MODEL" \
    --lora-rank 8 --lora-alpha 16 --beta 0.04 --out "$OUT/egspo_lora_f32.npz" > "$OUT/egspo_lora_f32.log" 2>&1
  replay egspo_replay "$OUT/egspo_lora_f32.npz" names
fi
if [ -n "$ESPO_REPO" ]; then
  "$ENVS/espo/bin/python" bench/official/run_espo.py --espo-repo "$ESPO_REPO" --model "$MODEL" \
    --out "$OUT/espo_f32.npz" > "$OUT/espo_f32.log" 2>&1
  replay espo_replay "$OUT/espo_f32.npz" modules
  "$ENVS/espo/bin/python" bench/official/run_espo.py --espo-repo "$ESPO_REPO" --model "$MODEL" \
    --lora-rank 8 --lora-alpha 16 --out "$OUT/espo_lora_f32.npz" > "$OUT/espo_lora_f32.log" 2>&1
  replay espo_replay "$OUT/espo_lora_f32.npz" modules
fi
if [ -n "$D1_REPO" ]; then
  "$ENVS/d1/bin/python" bench/official/run_d1.py --d1-repo "$D1_REPO" --model "$MODEL" \
    --out "$OUT/d1_f32.npz" > "$OUT/d1_f32.log" 2>&1
  replay d1_replay "$OUT/d1_f32.npz" modules
  "$ENVS/d1/bin/python" bench/official/run_d1.py --d1-repo "$D1_REPO" --model "$MODEL" \
    --lora-rank 8 --lora-alpha 16 --beta 0.04 --out "$OUT/d1_lora_f32.npz" > "$OUT/d1_lora_f32.log" 2>&1
  replay d1_replay "$OUT/d1_lora_f32.npz" modules
fi
exit $status
