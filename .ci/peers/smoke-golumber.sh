#!/usr/bin/env bash
# Self-check of the go-lumber peer: go-lumber client -> go-lumber server (plain,
# then mutual TLS with a throwaway CA), and go-lumber client -> our raw server,
# asserting every one of 10000 events arrives exactly once. Also checks that a
# client without a certificate is refused when one is required.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
GOLUMBER="$root/tests/peers/golumber/bin/golumber"
[[ -x "$GOLUMBER" ]] || "$here/build-golumber.sh"
N=${N:-10000}

tmp="$(mktemp -d)"
SERVER_PID=""
cleanup() {
	if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
make_certs "$tmp/pki"

# case NAME SERVER_ARGS -- CLIENT_ARGS
run_case() {
	local name="$1"
	shift
	local sargs=() cargs=()
	while [[ $# -gt 0 && "$1" != "--" ]]; do sargs+=("$1"); shift; done
	shift
	cargs=("$@")
	local d="$tmp/$name"
	mkdir -p "$d"
	start_golumber_server "$d" --expect "$N" --out "$d/events.ndjson" --stats-file "$d/stats.json" --deadline 60s "${sargs[@]}"
	local crc=0
	"$GOLUMBER" client --addr "$SERVER_ADDR" --count "$N" "${cargs[@]}" >"$d/client.json" 2>"$d/client.stderr" || crc=$?
	local src=0
	wait_server_exit 30 || src=$?
	if [[ $crc -ne 0 || $src -ne 0 ]]; then
		echo "FAIL $name: client rc=$crc server rc=$src" >&2
		cat "$d/client.json" "$d/client.stderr" "$d/server.stderr" >&2
		return 1
	fi
	check_seqs "$d/events.ndjson" "$N"
	echo "ok   $name: client $(cat "$d/client.json")"
	echo "     server $(cat "$d/stats.json")"
}

tls_server=(--tls-cert "$tmp/pki/server.crt" --tls-key "$tmp/pki/server.key" --tls-ca "$tmp/pki/ca.crt" --require-client-cert)
tls_client=(--tls-ca "$tmp/pki/ca.crt" --tls-cert "$tmp/pki/client.crt" --tls-key "$tmp/pki/client.key")

run_case plain-sync-z3 -- --mode sync --compression 3
run_case plain-async-z0 -- --mode async --compression 0 --pipelining 2
run_case mtls-async-z3 "${tls_server[@]}" -- --mode async --compression 3 "${tls_client[@]}"
run_case mtls-sync-z9-v2only "${tls_server[@]}" --v1=false -- --mode sync --compression 9 --batch 500 "${tls_client[@]}"
run_case raw-async-z6 --raw -- --mode async --compression 6
run_case raw-mtls-sync-z0 --raw "${tls_server[@]}" -- --mode sync --compression 0 "${tls_client[@]}"

# Negative: no client certificate while one is required -> refused, nothing stored.
d="$tmp/mtls-no-client-cert"
mkdir -p "$d"
start_golumber_server "$d" --out "$d/events.ndjson" "${tls_server[@]}"
if "$GOLUMBER" client --addr "$SERVER_ADDR" --count 10 --timeout 5s --tls-ca "$tmp/pki/ca.crt" >"$d/client.json" 2>&1; then
	echo "FAIL mtls-no-client-cert: client without certificate was accepted" >&2
	exit 1
fi
kill "$SERVER_PID"
wait_server_exit 10 || true
if [[ -s "$d/events.ndjson" ]]; then
	echo "FAIL mtls-no-client-cert: events stored" >&2
	exit 1
fi
echo "ok   mtls-no-client-cert: refused: $(cat "$d/client.json")"

# Fault modes of the raw server, observed through go-lumber's own client (which
# never retries): FAULT KEEPALIVE CLIENT_TIMEOUT WANT_ACKED WANT_ERROR_SUBSTRING.
check_fault() {
	local fault="$1" ka="$2" to="$3" want_acked="$4" want_err="$5"
	local d="$tmp/fault-${fault//[^a-z0-9]/_}"
	mkdir -p "$d"
	start_golumber_server "$d" --fault "$fault" --keepalive "$ka" --stats-file "$d/stats.json" --out "$d/events.ndjson"
	"$GOLUMBER" client --addr "$SERVER_ADDR" --batch 10 --count 30 --timeout "$to" >"$d/client.json" 2>&1 || true
	kill "$SERVER_PID"
	wait_server_exit 10 || true
	local acked
	acked=$(grep -o '"acked":[0-9]*' "$d/client.json" | cut -d: -f2)
	if [[ "$acked" != "$want_acked" ]] || ! grep -q -- "$want_err" "$d/client.json"; then
		echo "FAIL fault $fault: want acked=$want_acked and error containing '$want_err', got $(cat "$d/client.json")" >&2
		exit 1
	fi
	echo "ok   fault $fault: $(grep -o '"error":.*' "$d/client.json" || echo 'no error') | server $(cat "$d/stats.json")"
}
# go-lumber reports 0 after a partial ACK followed by EOF (it discards partial progress).
check_fault partial-ack-then-close 0 5s 0 '"error":"window 1 (10 events): EOF"'
# Held 1 s with ACK 0 every 100 ms: only keep-alives let a 300 ms client timeout survive.
check_fault keepalive-only=1s 100ms 300ms 30 '"acked":30'
check_fault never-ack 0 1s 0 'i/o timeout'
check_fault garbage 0 5s 0 'lumberjack protocol error'
check_fault close-after-events=15 0 5s 10 '"error":"window 2 (10 events): EOF"'
check_fault restart-after=10 0 5s 10 '"error":"window 2 (10 events): EOF"'

# restart-after really listens again on the same port after --restart-gap.
d="$tmp/restart"
mkdir -p "$d"
start_golumber_server "$d" --fault restart-after=10 --restart-gap 200ms --expect 20 --out "$d/events.ndjson"
"$GOLUMBER" client --addr "$SERVER_ADDR" --batch 10 --count 10 >"$d/client1.json"
ok=""
for _ in $(seq 1 100); do
	if "$GOLUMBER" client --addr "$SERVER_ADDR" --batch 10 --count 10 --seq-start 11 --timeout 2s >"$d/client2.json" 2>&1; then ok=1; break; fi
	sleep 0.05
done
wait_server_exit 10 || { echo "FAIL restart: server did not reach --expect 20" >&2; exit 1; }
[[ -n "$ok" ]] || { echo "FAIL restart: no client got through after the restart: $(cat "$d/client2.json")" >&2; exit 1; }
echo "ok   restart-after: port reopened and a second client delivered its events"

# --file replay sends each line byte-for-byte (spaces, <, >, & and non-ASCII kept).
d="$tmp/replay"
mkdir -p "$d"
printf '%s\n' '{"seq":1, "message":"a<b>&c"}' '{ "seq" : 2 ,"message":"h\u00e9llo é €"}' '{"seq":3,"nested":{"k":[1,2.50,null]}}' >"$d/in.ndjson"
start_golumber_server "$d" --expect 3 --out "$d/events.ndjson"
"$GOLUMBER" client --addr "$SERVER_ADDR" --file "$d/in.ndjson" --count 3 --compression 0 >"$d/client.json"
wait_server_exit 10
cmp "$d/in.ndjson" "$d/events.ndjson" || { echo "FAIL replay: bytes changed on the way" >&2; exit 1; }
echo "ok   replay: --file lines arrived byte-identical"
echo "smoke-golumber: all checks passed"
