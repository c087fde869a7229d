#!/usr/bin/env bash
# Create .venv and install redweb into it. Idempotent: re-runs only when pyproject.toml changed.
#   scripts/bootstrap.sh          runtime dependencies (what `redweb demo` needs)
#   scripts/bootstrap.sh --test   + test tools and the optional backends the tests exercise (mccnn: its
#                                 weights package without its dependencies, then the extra that lists them)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test,flow,segformer,mccnn]"
PY=${PYTHON:-python3}
# pip warns about every package missing from the machine's local extra indexes: noise, not errors
pipq() { .venv/bin/python -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.redweb-installed${extras}"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pipq install -q --upgrade "pip<25" wheel
# torch first, pinned to the builds this kind of machine has on local disk (see README).
case "$(uname -m)" in
  x86_64) torch_pins="torch==2.14.1 torchvision==0.29.1" ;;
  *)      torch_pins="torch==2.9.1 torchvision==0.24.1" ;;
esac
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  echo "[bootstrap] installing $torch_pins"
  pipq install -q $torch_pins
fi
if [ -n "$extras" ]; then
  # MC-CNN's weights: --no-deps, its opencv-python-headless would clash with opencv-python
  pipq install -q --no-deps "mccnn==1.4.1"
fi
echo "[bootstrap] installing redweb${extras}"
pipq install -q -e ".${extras}"
echo "$want" > "$stamp"
