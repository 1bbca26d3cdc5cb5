# shellcheck shell=bash
# Shared shell helpers for the peer scripts (sourced, not executed).
# Sets SERVER_PID / SERVER_ADDR for the caller.
# shellcheck disable=SC2034

# make_certs DIR: throwaway CA, server (CN=localhost, SAN localhost/127.0.0.1/::1)
# and client certificate, all signed by the CA, via Debian's openssl.
make_certs() {
	local d="$1"
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=skidder-test-ca" \
		-keyout "$d/ca.key" -out "$d/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	local who
	for who in server client; do
		openssl req -newkey rsa:2048 -nodes -subj "/CN=${who/server/localhost}" \
			-keyout "$d/$who.key" -out "$d/$who.csr" 2>/dev/null
	done
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
	printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
	for who in server client; do
		openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
			-days 2 -sha256 -extfile "$d/$who.ext" -out "$d/$who.crt" 2>/dev/null
	done
	# PKCS#8 copies: what Logstash and some clients insist on.
	openssl pkcs8 -topk8 -nocrypt -in "$d/server.key" -out "$d/server.pk8"
	openssl pkcs8 -topk8 -nocrypt -in "$d/client.key" -out "$d/client.pk8"
}

# start_golumber_server OUTDIR ARGS...: starts `golumber server ARGS` in the
# background; sets SERVER_PID and SERVER_ADDR (from the READY line). Waits at
# most 10 s for READY.
start_golumber_server() {
	local dir="$1"
	shift
	: >"$dir/server.stdout"
	"$GOLUMBER" server "$@" >"$dir/server.stdout" 2>"$dir/server.stderr" &
	SERVER_PID=$!
	local i
	for i in $(seq 1 200); do
		if grep -q '^READY ' "$dir/server.stdout"; then
			SERVER_ADDR="$(awk '/^READY /{print $2; exit}' "$dir/server.stdout")"
			return 0
		fi
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "golumber server did not print READY within 10 s; stderr:" >&2
	cat "$dir/server.stderr" >&2
	return 1
}

# wait_server_exit SECONDS: waits for SERVER_PID to exit by itself (it does so
# once --expect is reached), killing it after SECONDS; returns its exit code.
wait_server_exit() {
	local limit="$1"
	for _ in $(seq 1 $((limit * 20))); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		echo "golumber server still running after ${limit}s; stopping it" >&2
		kill "$SERVER_PID" 2>/dev/null || true
	fi
	local rc=0
	wait "$SERVER_PID" || rc=$?
	SERVER_PID=""
	return "$rc"
}

# check_seqs FILE N: every seq 1..N appears exactly once in the NDJSON file
# (seq as a number, or as a string for v1 clients).
check_seqs() {
	local file="$1" n="$2"
	awk -v n="$n" -v file="$file" '
		{
			lines++
			if (match($0, /"seq" *: *"?[0-9]+/)) {
				s = substr($0, RSTART + 5, RLENGTH - 5); gsub(/[^0-9]/, "", s); s += 0
				if (s < 1 || s > n) bad++; else if (seen[s]++) dup++
			} else noseq++
		}
		END {
			missing = 0
			for (i = 1; i <= n; i++) if (!(i in seen)) missing++
			if (lines != n || dup || bad || noseq || missing) {
				printf "FAIL: %s: %d lines, %d duplicates, %d out of range, %d without seq, %d of seq 1..%d missing\n", \
					file, lines, dup, bad, noseq, missing, n > "/dev/stderr"
				exit 1
			}
		}' "$file"
}
