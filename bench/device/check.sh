#!/usr/bin/env bash
# The device check (bench/device/README.md): installs what bench/device/wheels carries for modules this
# machine lacks, then runs every phase, each in its own process under its own time limit.
#
#   bash bench/device/check.sh --out runs/device_check              # a GPU, the papers' shapes, 8 minutes
#   bash bench/device/check.sh --out /tmp/device_check --cpu --tiny # this CPU, tiny shapes, ~1.5 minutes
#
# PYTHON picks the interpreter (default python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
if [ -d "$here/wheels" ]; then
  missing="$("$py" -c '
import importlib.util
wanted = {"qwix": "qwix", "grain": "grain", "math_verify": "math-verify", "pytest": "pytest"}
print(" ".join(p for m, p in wanted.items() if importlib.util.find_spec(m) is None))')"
  if [ -n "$missing" ]; then
    echo "[device check] installing $missing from $here/wheels"
    # shellcheck disable=SC2086  # one argument per package
    "$py" -m pip install --quiet --no-index --find-links "$here/wheels" $missing \
      || echo "[device check] pip install failed: the env phase lists what is missing"
  fi
fi
exec "$py" "$here/check.py" "$@"
