#!/usr/bin/env bash
# Builds/installs all third-party test peers; idempotent and quick when done:
#   tests/peers/golumber/bin/golumber      go build (Go's build cache makes a rebuild a no-op)
#   tests/peers/node-lumberjack/node_modules   npm ci, skipped while package-lock.json is unchanged
#   tests/peers/.venv                      venv + pip install -r (hash-pinned), skipped while
#                                          requirements.txt is unchanged
# Prints the time each step took.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
peers="$(cd "$here/../../tests/peers" && pwd)"

step() {
	local name="$1"
	shift
	local t0 t1
	t0=$(date +%s.%N)
	"$@"
	t1=$(date +%s.%N)
	awk -v n="$name" -v a="$t0" -v b="$t1" 'BEGIN { printf "setup: %-10s %6.2fs\n", n, b - a }'
}

# stamp_ok FILE STAMP: true when STAMP records FILE's current sha256.
stamp_ok() { [[ -f "$2" ]] && [[ "$(sha256sum <"$1")" == "$(cat "$2")" ]]; }

setup_go() { "$here/build-golumber.sh" >/dev/null; }

setup_node() {
	local d="$peers/node-lumberjack" stamp="$peers/node-lumberjack/node_modules/.skidder-lock.sha256"
	command -v npm >/dev/null || { echo "setup: npm is not on PATH" >&2; return 1; }
	if stamp_ok "$d/package-lock.json" "$stamp"; then return 0; fi
	(cd "$d" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	sha256sum <"$d/package-lock.json" >"$stamp"
}

setup_python() {
	local venv="$peers/.venv" req="$peers/pylogbeat/requirements.txt" stamp="$peers/.venv/.skidder-req.sha256"
	if stamp_ok "$req" "$stamp" && [[ -x "$venv/bin/python" ]]; then return 0; fi
	[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
	sha256sum <"$req" >"$stamp"
}

t_start=$(date +%s.%N)
step golumber setup_go
step node setup_node
step pylogbeat setup_python
awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "setup: %-10s %6.2fs\n", "total", b - a }'
