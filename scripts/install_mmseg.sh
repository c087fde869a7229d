#!/usr/bin/env bash
# Install the optional `mmseg` sky backend into .venv: mmcv 2.1 with compiled ops + mmsegmentation 1.2.2.
# mmcv has no wheel for this torch, so it is built from its sdist (about 11 min on 2 cores, once: the
# wheel is cached in ~/.cache/redweb/wheels and reused). torch >= 2.10 headers need C++20, while
# mmcv 2.1.0's setup.py asks for C++14/17: the build patches that flag and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if $PY -c "import mmcv.ops, mmseg" 2>/dev/null; then exit 0; fi
cache=${REDWEB_WHEEL_CACHE:-$HOME/.cache/redweb/wheels}
mkdir -p "$cache"
torch_tag=$($PY -c "import torch; print(torch.__version__.split('+')[0])")
wheel=$(ls "$cache"/mmcv-2.1.0-0torch"$torch_tag"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
  echo "[mmseg] building mmcv 2.1.0 with ops for torch $torch_tag (about 11 min, cached afterwards)"
  work=$(mktemp -d)
  $PY -m pip install -q "setuptools<70" ninja
  $PY -m pip download -q --no-deps --no-binary :all: "mmcv==2.1.0" -d "$work"
  tar xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
  sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$work"/mmcv-2.1.0/setup.py
  (cd "$work"/mmcv-2.1.0 && MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) "$OLDPWD/$PY" -m pip wheel -q --no-build-isolation \
      --no-deps . -w "$work/dist")
  built=$(ls "$work"/dist/mmcv-2.1.0-*.whl)
  # keep the torch version in the cached name: the ops are ABI-tied to the torch they were built with
  wheel="$cache/mmcv-2.1.0-0torch${torch_tag}-$(basename "$built" | cut -d- -f3-)"
  cp "$built" "$wheel"
  rm -rf "$work"
fi
echo "[mmseg] installing $(basename "$wheel") + mmsegmentation"
$PY -m pip install -q --no-deps "$wheel"
$PY -m pip install -q "mmengine>=0.10,<0.11" "mmsegmentation==1.2.2" ftfy regex
$PY -c "import mmcv.ops, mmseg; print('[mmseg] mmcv', mmcv.__version__, 'mmseg', mmseg.__version__)"
