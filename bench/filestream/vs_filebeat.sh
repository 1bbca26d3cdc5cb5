#!/usr/bin/env bash
# The filestream benchmark (issue 15): the same 1,000,000-line NDJSON file and plain-text file,
# read from the start by Filebeat 7.17.29 and by skidder (`run --once`), each shipping to
# go-lumber's server over mutual TLS at compression_level 3, pipelining 2, bulk_max_size 2048.
# Pairs alternate (Filebeat, skidder, Filebeat, skidder, ...); prints one line per run and the
# medians: CPU seconds per million events (user+sys from the kernel) and peak RSS. Then
# skidder file -> output.discard in MB/s per CPU-second.
#   bash bench/filestream/vs_filebeat.sh            (N=1000000 RUNS=2)
# Needs: target/release/skidder, tests/peers/filebeat/bin/filebeat (.ci/peers/filebeat.sh),
# tests/peers/golumber/bin/golumber (.ci/peers/setup.sh), openssl, python3.
set -euo pipefail
N="${N:-1000000}" RUNS="${RUNS:-2}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
skidder="${SKIDDER:-$root/target/release/skidder}"
fb="$root/tests/peers/filebeat/bin/filebeat"
gl="$root/tests/peers/golumber/bin/golumber"
work="$(mktemp -d)"
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$work"' EXIT
cd "$work"

# Test PKI: a CA, the server (127.0.0.1) and the client.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
    -subj /CN=bench-ca -days 2 2>/dev/null
for who in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $who.key -out $who.csr \
        -subj /CN=$who 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:%s\n' $who >$who.ext
    openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile $who.ext -out $who.crt 2>/dev/null
done

mkdir -p logs
python3 - "$N" <<'PY'
import random, sys
n = int(sys.argv[1]); rnd = random.Random(7)
levels = ["INFO", "WARN", "ERROR", "DEBUG"]
with open("logs/app.ndjson", "w") as nd, open("logs/app.log", "w") as pl:
    for i in range(n):
        lvl = levels[rnd.randrange(4)]; ms = rnd.randrange(1, 5000)
        host = "web-%02d" % rnd.randrange(40); path = "/api/v1/items/%d" % rnd.randrange(100000)
        nd.write('{"@timestamp":"2024-05-06T07:08:%02d.%03dZ","log.level":"%s","message":"request %d served",'
                 '"http":{"request":{"method":"GET"},"response":{"status_code":%d}},"url":{"path":"%s"},'
                 '"host":{"hostname":"%s"},"event":{"duration":%d},"trace":{"id":"%032x"}}\n'
                 % (i % 60, i % 1000, lvl, i, 200 + rnd.randrange(4) * 100, path, host, ms * 1000000, rnd.getrandbits(128)))
        pl.write('2024-05-06T07:08:%02d.%03dZ %s [%s] GET %s served request %d in %d ms\n'
                 % (i % 60, i % 1000, lvl, host, path, i, ms))
PY
bytes_nd=$(stat -c %s logs/app.ndjson) bytes_pl=$(stat -c %s logs/app.log)

# input KIND -> the filestream input's YAML lines (Filebeat's keys; skidder loads the same).
input() {
    local kind=$1 parsers=""
    local file=app.log
    if [[ $kind == ndjson ]]; then file=app.ndjson; parsers=$'\n    parsers:\n      - ndjson:\n          overwrite_keys: true'; fi
    printf '  - type: filestream\n    id: bench-%s\n    paths: ["%s/logs/%s"]%s\n' "$kind" "$work" "$file" "$parsers"
}
output() {
    printf 'output.logstash:\n  hosts: ["%s"]\n  compression_level: 3\n  pipelining: 2\n  bulk_max_size: 2048\n  ssl:\n    certificate_authorities: ["%s/ca.crt"]\n    certificate: "%s/client.crt"\n    key: "%s/client.key"\n' \
        "$1" "$work" "$work" "$work"
}

# Starts go-lumber's server expecting N events; sets $addr and $glpid.
server() {
    rm -f ready
    "$gl" server --listen 127.0.0.1:0 --tls-cert server.crt --tls-key server.key --tls-ca ca.crt \
        --require-client-cert --expect "$N" --deadline 600s >ready 2>gl.err &
    glpid=$!
    for _ in $(seq 200); do [[ -s ready ]] && break; sleep 0.05; done
    addr=$(awk '/^READY/{print $2}' ready)
}

cpu_rss_of() { # pid -> "cpu_s rss_kib" from /proc
    local t; t=$(awk '{print $14+$15}' "/proc/$1/stat")
    echo "$(awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t/hz}') $(awk '/VmHWM/{print $2}' "/proc/$1/status")"
}

run_filebeat() { # kind -> "cpu_s rss_kib wall_s"
    local kind=$1; server
    rm -rf fbdata; mkdir -p fbhome
    { printf 'filebeat.inputs:\n'; input "$kind"; output "$addr"; printf 'logging.level: warning\n'; } >fbhome/filebeat.yml
    local t0; t0=$(date +%s.%N)
    "$fb" -c "$work/fbhome/filebeat.yml" --path.home "$work/fbhome" --path.data "$work/fbdata" --path.logs "$work/fbhome" --strict.perms=false >/dev/null 2>fb.err &
    local pid=$!
    wait "$glpid"
    local t1; t1=$(date +%s.%N)
    local m; m=$(cpu_rss_of "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$m $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
}

run_skidder() { # kind [output yaml] -> "cpu_s rss_kib wall_s"
    local kind=$1; server
    rm -rf skdata
    { printf 'skidder.inputs:\n'; input "$kind"; output "$addr"; printf 'logging.level: warning\npath.data: %s/skdata\n' "$work"; } >sk.yml
    local t0; t0=$(date +%s.%N)
    /usr/bin/time -f '%U %S %M' -o sk.time "$skidder" run --once -c sk.yml >/dev/null 2>&1
    wait "$glpid"
    local t1; t1=$(date +%s.%N)
    echo "$(awk '{printf "%.2f %d", $1+$2, $3}' sk.time) $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
}

run_discard() { # kind -> "cpu_s rss_kib wall_s"
    rm -rf skdata
    { printf 'skidder.inputs:\n'; input "$1"; printf 'output.discard: {}\nlogging.level: warning\npath.data: %s/skdata\n' "$work"; } >sk.yml
    local t0; t0=$(date +%s.%N)
    /usr/bin/time -f '%U %S %M' -o sk.time "$skidder" run --once -c sk.yml >/dev/null 2>&1
    local t1; t1=$(date +%s.%N)
    echo "$(awk '{printf "%.2f %d", $1+$2, $3}' sk.time) $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
}

median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "# filestream vs Filebeat 7.17.29: N=$N lines per file, $RUNS alternating pairs, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
for kind in ndjson plain; do
    : >"fb.$kind" ; : >"sk.$kind"
    for r in $(seq "$RUNS"); do
        f=$(run_filebeat "$kind"); echo "$kind filebeat run $r: cpu_s rss_kib wall_s = $f"; echo "$f" >>"fb.$kind"
        s=$(run_skidder "$kind"); echo "$kind skidder  run $r: cpu_s rss_kib wall_s = $s"; echo "$s" >>"sk.$kind"
    done
    fcpu=$(cut -d' ' -f1 "fb.$kind" | median) scpu=$(cut -d' ' -f1 "sk.$kind" | median)
    frss=$(cut -d' ' -f2 "fb.$kind" | median) srss=$(cut -d' ' -f2 "sk.$kind" | median)
    awk -v k="$kind" -v n="$N" -v fc="$fcpu" -v sc="$scpu" -v fr="$frss" -v sr="$srss" 'BEGIN{
        m=n/1e6; printf "%s median: Filebeat %.1f CPU-s/M events, %.0f MB peak RSS | skidder %.2f CPU-s/M (%.3fx), %.0f MB (%.2fx)\n",
        k, fc/m, fr/1024, sc/m, sc/fc, sr/1024, sr/fr }'
done
for kind in ndjson plain; do
    d=$(run_discard "$kind"); b=$bytes_pl; [[ $kind == ndjson ]] && b=$bytes_nd
    awk -v k="$kind" -v d="$d" -v b="$b" 'BEGIN{split(d,x," "); printf "%s file -> output.discard: %.0f MB in %.2f CPU-s = %.0f MB/s per core (%.1f s wall)\n", k, b/1e6, x[1], b/1e6/x[1], x[3]}'
done
