#!/usr/bin/env bash
# Start or stop the OpenSearch test peer (tests/peers/opensearch) for skidder's Elasticsearch-output tests.
#
#   .ci/peers/opensearch.sh start   build if needed, start in the background, wait for READY,
#                                   write the base URL to tests/peers/opensearch/run/url and print it
#   .ci/peers/opensearch.sh stop    stop the peer and remove its node data
#   .ci/peers/opensearch.sh status  print the URL and exit 0 if running, exit 1 if not
#   .ci/peers/opensearch.sh build   build the jar only (skipped when it is newer than its sources)
#
# start and stop are idempotent: starting a running peer prints its URL; stopping a stopped one is a no-op.
# Environment (all optional):
#   OPENSEARCH_PEER_PORT           HTTP port, default 0 (a free port picked by the node)
#   OPENSEARCH_PEER_READY_TIMEOUT  seconds to wait for READY, default 180
#   OPENSEARCH_PEER_JAVA_OPTS      JVM options, default "-Xms256m -Xmx512m"
#   OPENSEARCH_PEER_ARGS           extra peer options, e.g. "--setting=compatibility.override_main_response_version=true"
#   JAVA_HOME                      JDK to run with (17 or newer), default the java on PATH
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PEER_DIR="$ROOT/tests/peers/opensearch"
RUN_DIR="$PEER_DIR/run"
JAR="$PEER_DIR/target/opensearch-peer.jar"
PID_FILE="$RUN_DIR/pid"
URL_FILE="$RUN_DIR/url"
OUT_FILE="$RUN_DIR/stdout"
ERR_FILE="$RUN_DIR/stderr"
HOME_DIR="$RUN_DIR/home"

PORT="${OPENSEARCH_PEER_PORT:-0}"
READY_TIMEOUT="${OPENSEARCH_PEER_READY_TIMEOUT:-180}"
# Word splitting of the options is intended.
read -r -a JAVA_OPTS <<<"${OPENSEARCH_PEER_JAVA_OPTS:--Xms256m -Xmx512m}"
read -r -a PEER_ARGS <<<"${OPENSEARCH_PEER_ARGS:-}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

log() { echo "opensearch-peer: $*" >&2; }
die() { log "$*"; exit 1; }

# True when the pid file names a live process that is our java peer (not a recycled pid).
running() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- 'opensearch-peer.jar'
}

build() {
    local stale=0
    if [[ ! -f "$JAR" || ! -d "$PEER_DIR/target/lib" ]]; then
        stale=1
    elif [[ -n "$(find "$PEER_DIR/pom.xml" "$PEER_DIR/src" -newer "$JAR" -print -quit)" ]]; then
        stale=1
    fi
    if [[ $stale -eq 0 ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found; install Maven 3.8+ (Debian package 'maven')"
    log "building $JAR"
    local started=$SECONDS
    # Output goes to stderr: stdout of 'start' is the URL alone.
    (cd "$PEER_DIR" && mvn -B -q package) >&2 || die "maven build failed (see output above)"
    # Make the jar newer than every source even if the clock or mtimes are odd.
    touch "$JAR"
    log "built in $((SECONDS - started))s"
}

start() {
    if running; then
        if [[ -s "$URL_FILE" ]]; then
            cat "$URL_FILE"
            return 0
        fi
        die "a peer (pid $(cat "$PID_FILE")) is running but has no URL yet; another start may be in progress"
    fi
    build
    rm -rf "$HOME_DIR" "$URL_FILE" "$PID_FILE"
    mkdir -p "$RUN_DIR"
    : >"$OUT_FILE"
    : >"$ERR_FILE"

    local started=$SECONDS
    # setsid: the node must outlive this script and not receive the caller's terminal signals.
    # Without job control, setsid execs java in place, so $! is the JVM's pid. 9>&-: the node must
    # not inherit the control lock, or every later start/stop would wait for the node to exit.
    setsid "$JAVA" "${JAVA_OPTS[@]}" -jar "$JAR" \
        --ignore-stdin --home="$HOME_DIR" --http-port="$PORT" --ready-timeout-seconds="$READY_TIMEOUT" ${PEER_ARGS[@]+"${PEER_ARGS[@]}"} \
        </dev/null >"$OUT_FILE" 2>"$ERR_FILE" 9>&- &
    local pid=$!
    echo "$pid" >"$PID_FILE"

    local deadline=$((SECONDS + READY_TIMEOUT + 10))
    local url=""
    while :; do
        url="$(sed -n 's/^READY \(http:\/\/127\.0\.0\.1:[0-9][0-9]*\)$/\1/p' "$OUT_FILE" | head -n 1)"
        [[ -n "$url" ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -rf "$PID_FILE" "$HOME_DIR"
            log "peer exited before READY; last lines of $ERR_FILE:"
            tail -n 15 "$ERR_FILE" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "no READY within $((READY_TIMEOUT + 10))s; stopping it. Last lines of $ERR_FILE:"
            tail -n 15 "$ERR_FILE" >&2
            stop
            exit 1
        fi
        sleep 0.2
    done
    echo "$url" >"$URL_FILE"
    log "ready at $url (pid $pid, $((SECONDS - started))s)"
    echo "$url"
}

stop() {
    if running; then
        local pid
        pid="$(cat "$PID_FILE")"
        kill -TERM "$pid" 2>/dev/null || true
        # The shutdown hook closes the node; give it a bounded time, then force it.
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid still alive after 30s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped (pid $pid)"
    fi
    rm -rf "$HOME_DIR" "$PID_FILE" "$URL_FILE"
}

status() {
    if running && [[ -s "$URL_FILE" ]]; then
        cat "$URL_FILE"
        return 0
    fi
    return 1
}

cmd="${1:-}"
case "$cmd" in
    start | stop | status | build)
        mkdir -p "$RUN_DIR"
        # One control command at a time: two concurrent starts must not launch two nodes.
        exec 9>"$RUN_DIR/lock"
        flock -w 300 9 || die "timed out waiting for $RUN_DIR/lock held by another $0"
        "$cmd"
        ;;
    *)
        echo "usage: $0 start|stop|status|build" >&2
        exit 2
        ;;
esac
