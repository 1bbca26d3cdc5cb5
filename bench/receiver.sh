#!/usr/bin/env bash
# Receiver throughput: go-lumber's async client -> `skidder receive --out discard` (release)
# versus the same client -> go-lumber's own server, A B A B..., median of RUNS each.
#
#   bench/receiver.sh [COUNT=1000000] [COMPRESSION=3] [extra golumber client args...]
#   RUNS=3 (default)  SKIP_BUILD=1 (use the existing target/release/skidder)
#   TLS=1: mutual TLS on both servers (throwaway openssl PKI from .ci/peers/lib.sh)
#
# Prints one line per run and a summary with both medians and skidder/go-lumber.
# Client, server and the client's compression share the machine's cores: compare the
# two servers within one run of this script, not across machines.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-1000000}"
z="${2:-3}"
shift $(( $# > 2 ? 2 : $# ))
runs="${RUNS:-3}"

bash .ci/peers/setup.sh >/dev/null
if [[ -z "${SKIP_BUILD:-}" ]]; then
	cargo build --release --bin skidder >/dev/null
fi
skidder="$PWD/target/release/skidder"
golumber="$PWD/tests/peers/golumber/bin/golumber"
tmp="$(mktemp -d)"
server_pid=""
cleanup() {
	if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

server_tls=()
client_tls=()
golumber_tls=()
if [[ -n "${TLS:-}" ]]; then
	# shellcheck source=.ci/peers/lib.sh disable=SC1091
	source .ci/peers/lib.sh
	make_certs "$tmp/pki" >/dev/null
	server_tls=(--tls-cert "$tmp/pki/server.crt" --tls-key "$tmp/pki/server.key" --tls-ca "$tmp/pki/ca.crt" --require-client-cert)
	golumber_tls=("${server_tls[@]}")
	client_tls=(--tls-ca "$tmp/pki/ca.crt" --tls-cert "$tmp/pki/client.crt" --tls-key "$tmp/pki/client.key")
fi

# wait_line FILE PATTERN: bounded wait (10 s) for PATTERN in FILE; prints the line.
wait_line() {
	local i
	for i in $(seq 1 200); do
		if grep -m1 "$2" "$1" 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "bench: no '$2' in $1 within 10s" >&2
	cat "$1" >&2
	return 1
}

start_skidder() {
	"$skidder" receive --listen 127.0.0.1:0 --out discard --log-level warn "${server_tls[@]}" 2>"$tmp/server.err" &
	server_pid=$!
	addr="$(wait_line "$tmp/server.err" 'listening on' | awk '{print $3}')"
}

start_golumber() {
	"$golumber" server --listen 127.0.0.1:0 "${golumber_tls[@]}" >"$tmp/server.out" 2>"$tmp/server.err" &
	server_pid=$!
	addr="$(wait_line "$tmp/server.out" '^READY' | awk '{print $2}')"
}

stop_server() {
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

# run_client: prints events/s of one client run against $addr (fails unless all ACKed).
run_client() {
	local out
	out="$("$golumber" client --addr "$addr" --mode async --compression "$z" --batch 2048 \
		--pipelining 2 --count "$count" "${client_tls[@]}" "$@")"
	python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["acked"]==r["sent"], r; print(int(r["events_per_s"]))' "$out"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

sk=()
gl=()
for i in $(seq 1 "$runs"); do
	start_skidder
	sk+=("$(run_client "$@")")
	stop_server
	start_golumber
	gl+=("$(run_client "$@")")
	stop_server
	echo "run $i: skidder ${sk[-1]} ev/s   go-lumber ${gl[-1]} ev/s"
done
ms="$(median "${sk[@]}")"
mg="$(median "${gl[@]}")"
awk -v s="$ms" -v g="$mg" -v n="$count" -v z="$z" -v t="${TLS:+, mutual TLS}" 'BEGIN {
	printf "receiver bench (%d events, async, compression %s%s, median of runs): skidder %d ev/s, go-lumber %d ev/s, ratio %.2f\n", n, z, t, s, g, s / g }'
