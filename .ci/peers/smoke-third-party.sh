#!/usr/bin/env bash
# Verifies the npm and PyPI Lumberjack clients against the go-lumber server:
# what must work delivers every event exactly once; the known incompatibilities
# (documented in the peers' READMEs) are asserted to still fail, so a change in
# a library or in go-lumber is noticed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
"$here/setup.sh" >/dev/null
GOLUMBER="$root/tests/peers/golumber/bin/golumber"
NODE_SEND="$root/tests/peers/node-lumberjack/send.js"
PY="$root/tests/peers/.venv/bin/python"
PY_SEND="$root/tests/peers/pylogbeat/send.py"
N=${N:-10000}

tmp="$(mktemp -d)"
SERVER_PID=""
cleanup() {
	if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
make_certs "$tmp/pki"
tls_server=(--tls-cert "$tmp/pki/server.crt" --tls-key "$tmp/pki/server.key" --tls-ca "$tmp/pki/ca.crt" --require-client-cert)
node_tls=(--ca "$tmp/pki/ca.crt" --cert "$tmp/pki/client.crt" --key "$tmp/pki/client.key")
py_tls=(--ca "$tmp/pki/ca.crt" --cert "$tmp/pki/client.crt" --key "$tmp/pki/client.key")

# expect_ok NAME SERVER_ARGS -- CLIENT_COMMAND...
expect_ok() {
	local name="$1"
	shift
	local sargs=()
	while [[ "$1" != "--" ]]; do sargs+=("$1"); shift; done
	shift
	local d="$tmp/$name"
	mkdir -p "$d"
	start_golumber_server "$d" --expect "$N" --out "$d/events.ndjson" --stats-file "$d/stats.json" --deadline 60s "${sargs[@]}"
	local crc=0 src=0
	"$@" --port "${SERVER_ADDR##*:}" --count "$N" >"$d/client.json" 2>"$d/client.stderr" || crc=$?
	wait_server_exit 30 || src=$?
	if [[ $crc -ne 0 || $src -ne 0 ]]; then
		echo "FAIL $name: client rc=$crc server rc=$src" >&2
		cat "$d/client.json" "$d/client.stderr" "$d/server.stderr" >&2
		exit 1
	fi
	check_seqs "$d/events.ndjson" "$N"
	echo "ok   $name: $(cat "$d/client.json")"
}

# expect_fail NAME SERVER_ARGS -- CLIENT_COMMAND...: the client must fail.
expect_fail() {
	local name="$1"
	shift
	local sargs=()
	while [[ "$1" != "--" ]]; do sargs+=("$1"); shift; done
	shift
	local d="$tmp/$name"
	mkdir -p "$d"
	start_golumber_server "$d" "${sargs[@]}"
	if "$@" --port "${SERVER_ADDR##*:}" >"$d/client.json" 2>"$d/client.stderr"; then
		echo "FAIL $name: expected this known incompatibility to fail, but it worked: $(cat "$d/client.json")" >&2
		exit 1
	fi
	kill "$SERVER_PID"
	wait_server_exit 10 || true
	echo "ok   $name (fails as documented): $(cat "$d/client.json" "$d/client.stderr" | head -c 300)"
}

# npm lumberjack-client: Lumberjack v2, zlib C frames, plain or TLS.
expect_ok node-v2-plain-per-event -- node "$NODE_SEND" --lib client
expect_ok node-v2-plain-queued -- node "$NODE_SEND" --lib client --window-mode queued
expect_ok node-v2-mtls-per-event "${tls_server[@]}" -- node "$NODE_SEND" --lib client "${node_tls[@]}"
# npm lumberjack-protocol: Lumberjack v1 over TLS only; works while all events fit one window.
expect_ok node-v1-mtls-one-window "${tls_server[@]}" -- node "$NODE_SEND" --lib protocol "${node_tls[@]}"
expect_fail node-v1-two-windows "${tls_server[@]}" -- node "$NODE_SEND" --lib protocol --count 2000 --window 1000 --timeout-ms 10000 "${node_tls[@]}"
expect_fail node-v1-plain-tcp -- node "$NODE_SEND" --lib protocol --count 10 --timeout-ms 5000 --ca "$tmp/pki/ca.crt"

# PyPI pylogbeat: Lumberjack v2, zlib C frames, plain or TLS.
expect_ok py-one-window -- "$PY" "$PY_SEND"
expect_ok py-plain-conn-per-batch -- "$PY" "$PY_SEND" --batch 1000 --connection-per-batch
expect_ok py-mtls-conn-per-batch "${tls_server[@]}" -- "$PY" "$PY_SEND" --batch 2048 --connection-per-batch "${py_tls[@]}"
expect_fail py-two-windows-one-conn -- "$PY" "$PY_SEND" --count 2000 --batch 1000 --timeout 2
echo "smoke-third-party: all checks passed"
