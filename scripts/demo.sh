#!/usr/bin/env bash
# The main job on the embedded samples, offline: sets up .venv, then runs `redweb demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/redweb demo "$@"
