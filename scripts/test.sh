#!/usr/bin/env bash
# The test command: installs everything the tests need (venv, PostgreSQL, Chromium), starts a
# throw-away PostgreSQL server on loopback, runs pytest, stops the server. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
# the optional mmseg sky backend has a test too: mmcv with ops is built once (~11 min) and cached
# REDWEB_SKIP_MMSEG=1 skips it (the mmseg test then skips): for quick partial runs while it builds
[ -n "${REDWEB_SKIP_MMSEG:-}" ] || scripts/install_mmseg.sh

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[test] apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# A private PostgreSQL cluster on loopback, owned by an unprivileged user (initdb refuses root).
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || command -v initdb)")
PGDIR=$(mktemp -d /tmp/redweb-pg.XXXXXX)
PGPORT=${REDWEB_TEST_PGPORT:-$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
id -u postgres >/dev/null 2>&1 || useradd -r -M postgres
chown postgres "$PGDIR"
runpg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
runpg "$PGBIN/initdb -D $PGDIR/data -U redweb --auth=trust -E UTF8 >/dev/null"
runpg "$PGBIN/pg_ctl -D $PGDIR/data -l $PGDIR/log -w -o '-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR -c max_connections=200 -c fsync=off' start >/dev/null"
trap 'runpg "$PGBIN/pg_ctl -D $PGDIR/data -m fast stop >/dev/null" || true; rm -rf "$PGDIR"' EXIT
runpg "$PGBIN/createdb -h 127.0.0.1 -p $PGPORT -U redweb redweb_test"
export REDWEB_TEST_POSTGRES_URL="postgresql+psycopg://redweb@127.0.0.1:$PGPORT/redweb_test"
echo "[test] PostgreSQL on 127.0.0.1:$PGPORT"

export REDWEB_CHROMIUM=${REDWEB_CHROMIUM:-/usr/bin/chromium}
# Prefect: a private home per test run (its own throw-away API database), no telemetry, patient start-up.
export PREFECT_HOME="$PGDIR/prefect-home"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180
# Free space: tests delete their own tmp_path when they pass, but module fixtures and one test at a time
# still need ~2 GB under $TMPDIR. A full disk shows as hundreds of unrelated errors, so say it first.
tmp_free_mb=$(df -Pm "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4}')
if [ "${tmp_free_mb:-0}" -lt 3000 ]; then
  echo "[test] only ${tmp_free_mb} MB free under ${TMPDIR:-/tmp}: the tests need about 3000 MB (set TMPDIR elsewhere)" >&2
  exit 1
fi
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
exit $rc
