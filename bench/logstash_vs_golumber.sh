#!/usr/bin/env bash
# skidder's output.logstash vs go-lumber's own async client, same events, same server.
#
#   bench/logstash_vs_golumber.sh [EVENTS=1000000] [ROUNDS=3] [LEVEL=3]
#
# Both senders ship the same ~460-byte NDJSON corpus (bench/make_corpus.py) over mutual
# TLS to a fresh `golumber server --require-client-cert` (go-lumber v0.2.0) with
# compression LEVEL, windows of 2048 events and 2 windows in flight. Runs alternate
# A B A B ...; the table shows every run and the medians. Sender CPU and peak RSS come
# from each sender's own getrusage (skidder's totals line, the golumber client's JSON);
# wire bytes are the Lumberjack bytes the server read (compressed C frames).
# Set SKIDDER_BIN to skip `cargo build --release`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
events="${1:-1000000}"
rounds="${2:-3}"
level="${3:-3}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "${SKIDDER_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --bin skidder >&2)
    SKIDDER_BIN="$root/target/release/skidder"
fi
"$root/.ci/peers/build-golumber.sh" >&2
golumber="$root/tests/peers/golumber/bin/golumber"

python3 "$root/bench/make_corpus.py" 10000 >"$work/corpus.ndjson"

# Test PKI: one CA, a server certificate for 127.0.0.1, a client certificate.
pki() {
    local name="$1" cn="$2" ext="$3"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
        -keyout "$work/$name.key" -out "$work/$name.csr" 2>/dev/null
    printf '%s\n' "$ext" >"$work/$name.ext"
    openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
        -CAcreateserial -days 2 -extfile "$work/$name.ext" -out "$work/$name.crt" 2>/dev/null
}
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench CA" \
    -days 2 -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
pki server logstash "subjectAltName=IP:127.0.0.1"
pki client shipper "extendedKeyUsage=clientAuth"

start_server() {
    local tag="$1"
    rm -f "$work/ready"
    "$golumber" server --listen 127.0.0.1:0 --tls-cert "$work/server.crt" --tls-key "$work/server.key" \
        --tls-ca "$work/ca.crt" --require-client-cert --expect "$events" --deadline 300s \
        --stats-file "$work/stats-$tag.json" >"$work/ready" 2>"$work/server-$tag.log" &
    server_pid=$!
    for _ in $(seq 100); do
        if grep -q READY "$work/ready" 2>/dev/null; then break; fi
        sleep 0.1
    done
    addr="$(awk '/READY/ {print $2}' "$work/ready")"
    [[ -n "$addr" ]] || { echo "golumber server did not start" >&2; exit 1; }
}

stop_server() {
    wait "$server_pid" || true
    server_pid=""
}

run_skidder() {
    local tag="$1"
    start_server "$tag"
    cat >"$work/skidder.yml" <<YAML
skidder.inputs:
  - type: generator
    count: $events
    replay: $work/corpus.ndjson
queue.mem:
  events: 8192
  flush: {min_events: 2048, timeout: 10ms}
output.logstash:
  hosts: ["$addr"]
  compression_level: $level
  bulk_max_size: 2048
  pipelining: 2
  ssl:
    certificate_authorities: ["$work/ca.crt"]
    certificate: "$work/client.crt"
    key: "$work/client.key"
YAML
    "$SKIDDER_BIN" run -e -c "$work/skidder.yml" 2>"$work/skidder-$tag.log" >/dev/null
    stop_server
    python3 - "$work/skidder-$tag.log" "$work/stats-$tag.json" "$events" <<'PY'
import json, sys
line = next(l for l in open(sys.argv[1]) if l.startswith("skidder totals:"))
t = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split())
s = json.load(open(sys.argv[2]))
n = int(sys.argv[3])
assert int(t["acked"]) == n, line
print(json.dumps({"sender": "skidder", "eps": float(t["events_per_s"]), "cpu_s": float(t["cpu_s"]),
                  "bytes_per_event": s["bytes"] / n, "rss_kib": int(t["peak_rss_kib"])}))
PY
}

run_golumber() {
    local tag="$1"
    start_server "$tag"
    "$golumber" client --addr "$addr" --mode async --compression "$level" --batch 2048 --pipelining 2 \
        --tls-ca "$work/ca.crt" --tls-cert "$work/client.crt" --tls-key "$work/client.key" \
        --count "$events" --file "$work/corpus.ndjson" >"$work/go-$tag.json" 2>"$work/go-$tag.log"
    stop_server
    python3 - "$work/go-$tag.json" "$work/stats-$tag.json" "$events" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
n = int(sys.argv[3])
assert r["acked"] == n, r
print(json.dumps({"sender": "go-lumber", "eps": r["events_per_s"], "cpu_s": r["cpu_user_s"] + r["cpu_sys_s"],
                  "bytes_per_event": s["bytes"] / n, "rss_kib": r["max_rss_kib"]}))
PY
}

results="$work/results.ndjson"
for round in $(seq "$rounds"); do
    run_skidder "s$round" | tee -a "$results" >&2
    run_golumber "g$round" | tee -a "$results" >&2
done

python3 - "$results" "$events" "$level" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
print(f"{n} events of the bench corpus, mTLS, level {sys.argv[3]}, batch 2048, pipelining 2")
print(f"{'sender':<10} {'events/s':>10} {'CPU s/1M ev':>12} {'bytes/event':>12} {'peak RSS KiB':>13}")
med = {}
for who in ("skidder", "go-lumber"):
    rs = [r for r in rows if r["sender"] == who]
    for r in rs:
        print(f"{who:<10} {r['eps']:>10.0f} {r['cpu_s'] * 1e6 / n:>12.3f} {r['bytes_per_event']:>12.1f} {r['rss_kib']:>13}")
    med[who] = {k: statistics.median(r[k] for r in rs) for k in ("eps", "cpu_s", "bytes_per_event", "rss_kib")}
for who, m in med.items():
    print(f"median {who:<10} {m['eps']:>10.0f} {m['cpu_s'] * 1e6 / n:>12.3f} {m['bytes_per_event']:>12.1f} {m['rss_kib']:>13.0f}")
s, g = med["skidder"], med["go-lumber"]
print(f"ratios skidder/go-lumber: events/s {s['eps'] / g['eps']:.2f}, CPU per event {s['cpu_s'] / g['cpu_s']:.2f}, "
      f"bytes per event {s['bytes_per_event'] / g['bytes_per_event']:.3f}, peak RSS {s['rss_kib'] / g['rss_kib']:.2f}")
PY
