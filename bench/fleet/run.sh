#!/usr/bin/env bash
# Balancing with one slow Logstash (issue 20): three go-lumber servers, one holding every
# batch DELAY before its ACK, against two fast ones alone. Runs, alternating, per round:
#   A  2 fast hosts                       (loadbalance_strategy: capacity)
#   B  2 fast + 1 slow, capacity           (the default)
#   C  2 fast + 1 slow, round_robin        (Beats' strict turns; COUNT_RR events, it is slow)
# and prints a Markdown section with the medians of skidder's own totals line (events/s over
# the whole run, first event to last ACK) and each server's share.
#
#   cargo-serial build --release -p skidder && bash .ci/peers/build-golumber.sh
#   bash bench/fleet/run.sh            # RUNS=3 COUNT=4000000 COUNT_RR=100000 DELAY=2s
set -euo pipefail
cd "$(dirname "$0")/../.."
SKIDDER=${SKIDDER:-target/release/skidder}
GOLUMBER=${GOLUMBER:-tests/peers/golumber/bin/golumber}
RUNS=${RUNS:-3}
COUNT=${COUNT:-4000000}
COUNT_RR=${COUNT_RR:-100000}
DELAY=${DELAY:-2s}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_server NAME [ARGS...]: a golumber server on a free port; sets ADDR_<NAME>.
start_server() {
    local name=$1
    shift
    "$GOLUMBER" server --listen 127.0.0.1:0 --stats-file "$WORK/$name.stats" "$@" \
        >"$WORK/$name.ready" 2>/dev/null &
    PIDS+=($!)
    for _ in $(seq 1 200); do
        if grep -q '^READY ' "$WORK/$name.ready" 2>/dev/null; then
            printf -v "ADDR_$name" '%s' "$(sed -n 's/^READY //p' "$WORK/$name.ready")"
            return
        fi
        sleep 0.05
    done
    echo "golumber server $name did not start" >&2
    exit 1
}

stop_servers() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

# run_case LABEL COUNT STRATEGY HOSTS...: prints "events_per_s elapsed_s share,share,..".
run_case() {
    local count=$2 strategy=$3
    shift 3
    local hosts
    hosts=$(printf '"%s", ' "$@")
    cat >"$WORK/skidder.yml" <<YAML
skidder.inputs:
  - type: generator
    count: $count
output.logstash:
  hosts: [${hosts%, }]
  loadbalance: true
  loadbalance_strategy: $strategy
logging.metrics.enabled: false
YAML
    local line
    "$SKIDDER" run -e -c "$WORK/skidder.yml" >"$WORK/run.log" 2>&1 || true
    line=$(grep '^skidder totals:' "$WORK/run.log" || true)
    if [[ -z "$line" ]]; then
        echo "case $1: no totals line; skidder's last lines:" >&2
        tail -5 "$WORK/run.log" >&2
    fi
    local eps elapsed
    eps=$(sed -n 's/.*events_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
    elapsed=$(sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p' <<<"$line")
    echo "$eps $elapsed"
}

# shares: the events each server accepted, fast1,fast2[,slow], from the stats files they
# write at exit (call stop_servers in the main shell first: only it can wait for them).
shares() {
    local out=""
    for s in fast1 fast2 slow; do
        [[ -f "$WORK/$s.stats" ]] || continue
        out+="$(sed -n 's/.*"events":\([0-9]*\).*/\1/p' "$WORK/$s.stats"),"
        rm -f "$WORK/$s.stats"
    done
    echo "${out%,}"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A EPS ELAPSED SHARES
for round in $(seq 1 "$RUNS"); do
    start_server fast1; start_server fast2
    r=$(run_case A "$COUNT" capacity "$ADDR_fast1" "$ADDR_fast2")
    EPS[A]+="${r%% *} "; ELAPSED[A]+="$(cut -d' ' -f2 <<<"$r") "; stop_servers; SHARES[A]+="$(shares) "
    start_server fast1; start_server fast2; start_server slow --ack-delay "$DELAY" --keepalive 500ms
    r=$(run_case B "$COUNT" capacity "$ADDR_fast1" "$ADDR_fast2" "$ADDR_slow")
    EPS[B]+="${r%% *} "; ELAPSED[B]+="$(cut -d' ' -f2 <<<"$r") "; stop_servers; SHARES[B]+="$(shares) "
    start_server fast1; start_server fast2; start_server slow --ack-delay "$DELAY" --keepalive 500ms
    r=$(run_case C "$COUNT_RR" round_robin "$ADDR_fast1" "$ADDR_fast2" "$ADDR_slow")
    EPS[C]+="${r%% *} "; ELAPSED[C]+="$(cut -d' ' -f2 <<<"$r") "; stop_servers; SHARES[C]+="$(shares) "
    echo "round $round: A ${EPS[A]} | B ${EPS[B]} | C ${EPS[C]}" >&2
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx2|avx512f' | sort -u | tr '\n' ' ')
a=$(tr ' ' '\n' <<<"${EPS[A]}" | grep . | median)
b=$(tr ' ' '\n' <<<"${EPS[B]}" | grep . | median)
c=$(tr ' ' '\n' <<<"${EPS[C]}" | grep . | median)
cat <<MD
## Logstash fleet: one slow host (issue 20)

\`bash bench/fleet/run.sh\` (RUNS=$RUNS, DELAY=$DELAY): go-lumber servers on loopback, one
holding every batch $DELAY before its ACK; generator events, default output settings
(level 3, pipelining 2, bulk_max_size 2048), \`loadbalance: true\`. Cases alternate A B C per
round; medians of skidder's totals line (events/s from start to the last ACK). CPU: $cpu
(${flags:-no avx2/avx512}), $(nproc) cores, shared with other builds: absolute numbers are noisy,
compare within the table.

| case | events | events/s (median) | runs: events/s | runs: elapsed s | events per server (fast, fast, slow) |
|---|---:|---:|---|---|---|
| A 2 fast hosts, capacity | $COUNT | $a | ${EPS[A]} | ${ELAPSED[A]} | ${SHARES[A]} |
| B 2 fast + 1 slow, capacity | $COUNT | $b | ${EPS[B]} | ${ELAPSED[B]} | ${SHARES[B]} |
| C 2 fast + 1 slow, round_robin | $COUNT_RR | $c | ${EPS[C]} | ${ELAPSED[C]} | ${SHARES[C]} |

B / A = $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}'); C / A = $(awk -v a="$a" -v c="$c" 'BEGIN {printf "%.3f", c / a}').
MD
