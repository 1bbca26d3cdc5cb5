#!/usr/bin/env bash
# Smoke test of the OpenSearch test peer: proves the node behaves like the real bulk API that
# skidder's Elasticsearch output relies on. Starts the peer if it is not running (and then stops it
# again at the end), and checks with curl + jq:
#   1. _bulk with `index` (explicit and generated _id) and `create` actions -> 200, errors=false, 201s
#   2. _refresh, then _count equals the number of documents sent
#   3. a mapping conflict and a duplicate `create` inside one bulk -> HTTP 200, errors=true,
#      per-item 400 (mapper_parsing_exception) and 409 (version_conflict_engine_exception),
#      while the good item of the same request is still indexed
#   4. a data stream from an _index_template with `data_stream: {}`: `create` -> 201 into a
#      .ds- backing index, `index` -> 400, GET _data_stream lists it, _count of the stream
# Prints one line per check and a closing "N passed, N failed" line; exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CTL="$ROOT/.ci/peers/opensearch.sh"

for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "opensearch-smoke: $tool not found" >&2; exit 1; }
done

started_here=0
if ! URL="$("$CTL" status)"; then
    URL="$("$CTL" start)"
    started_here=1
fi
cleanup() {
    if [[ $started_here -eq 1 ]]; then
        "$CTL" stop || true
    fi
}
trap cleanup EXIT

passed=0
failed=0
check() { # check NAME ACTUAL EXPECTED
    if [[ "$2" == "$3" ]]; then
        echo "ok   - $1"
        passed=$((passed + 1))
    else
        echo "FAIL - $1: expected '$3', got '$2'"
        failed=$((failed + 1))
    fi
}

# Each test run uses fresh names so a peer that is reused across runs does not skew counts.
RUN_ID="$(date +%s)-$$"
INDEX="skidder-smoke-$RUN_ID"
STREAM="logs-skidder-smoke-$RUN_ID"
TEMPLATE="skidder-smoke-ds-$RUN_ID"
BODY="$(mktemp)"
trap 'rm -f "$BODY"; cleanup' EXIT

# request METHOD PATH [CONTENT-TYPE]: with a content type the request body is read from stdin
# (byte for byte: _bulk needs its final newline, which "$(...)" would strip). The response body
# goes to $BODY; the HTTP status is printed.
# --noproxy: the peer is on loopback; a proxy from the environment must never see these requests.
request() {
    local method="$1" path="$2"
    local args=(-sS --noproxy '*' --max-time 30 -o "$BODY" -w '%{http_code}' -X "$method")
    if [[ $# -ge 3 ]]; then
        args+=(-H "Content-Type: $3" --data-binary @-)
    fi
    curl "${args[@]}" "$URL$path"
}

# One NDJSON line per argument, each ending in a newline.
ndjson() { printf '%s\n' "$@"; }

# --- 1. bulk index + create --------------------------------------------------------------
status="$(request PUT "/$INDEX" application/json <<<'{"mappings":{"properties":{"count":{"type":"integer"}}}}')"
check "create index with integer 'count' mapping -> 200" "$status" 200

status="$(ndjson \
    "{\"index\":{\"_index\":\"$INDEX\",\"_id\":\"1\"}}" '{"message":"first","count":1}' \
    "{\"create\":{\"_index\":\"$INDEX\",\"_id\":\"2\"}}" '{"message":"second","count":2}' \
    "{\"index\":{\"_index\":\"$INDEX\"}}" '{"message":"third, generated id","count":3}' |
    request POST /_bulk application/x-ndjson)"
check "bulk index/create -> HTTP 200" "$status" 200
check "bulk index/create -> errors=false" "$(jq -r .errors "$BODY")" false
check "bulk index/create -> item statuses" "$(jq -c '[.items[] | to_entries[0] | [.key, .value.status]]' "$BODY")" \
    '[["index",201],["create",201],["index",201]]'

# --- 2. refresh + count ------------------------------------------------------------------
check "_refresh -> 200" "$(request POST "/$INDEX/_refresh")" 200
check "_count -> 200" "$(request GET "/$INDEX/_count")" 200
check "_count after first bulk" "$(jq -r .count "$BODY")" 3

# --- 3. per-item failures inside a 200 bulk response -------------------------------------
status="$(ndjson \
    "{\"index\":{\"_index\":\"$INDEX\",\"_id\":\"bad\"}}" '{"message":"mapping conflict","count":"not-a-number"}' \
    "{\"create\":{\"_index\":\"$INDEX\",\"_id\":\"2\"}}" '{"message":"duplicate create","count":2}' \
    "{\"index\":{\"_index\":\"$INDEX\",\"_id\":\"4\"}}" '{"message":"good one in a bad batch","count":4}' |
    request POST /_bulk application/x-ndjson)"
check "bulk with bad items -> HTTP 200" "$status" 200
check "bulk with bad items -> errors=true" "$(jq -r .errors "$BODY")" true
check "bulk with bad items -> item statuses" "$(jq -c '[.items[] | to_entries[0].value.status]' "$BODY")" '[400,409,201]'
check "mapping conflict error type" "$(jq -r '.items[0].index.error.type' "$BODY")" mapper_parsing_exception
check "duplicate create error type" "$(jq -r '.items[1].create.error.type' "$BODY")" version_conflict_engine_exception
request POST "/$INDEX/_refresh" >/dev/null
request GET "/$INDEX/_count" >/dev/null
check "_count after partial failure (only the good item added)" "$(jq -r .count "$BODY")" 4

# --- 4. data stream ----------------------------------------------------------------------
status="$(request PUT "/_index_template/$TEMPLATE" application/json <<< \
    "{\"index_patterns\":[\"$STREAM*\"],\"data_stream\":{},\"priority\":500}")"
check "_index_template with data_stream -> 200" "$status" 200

status="$(ndjson \
    "{\"create\":{\"_index\":\"$STREAM\"}}" '{"@timestamp":"2026-01-02T03:04:05.678Z","message":"ds one"}' \
    "{\"create\":{\"_index\":\"$STREAM\"}}" '{"@timestamp":"2026-01-02T03:04:06Z","message":"ds two"}' \
    "{\"index\":{\"_index\":\"$STREAM\"}}" '{"@timestamp":"2026-01-02T03:04:07Z","message":"index op is refused"}' |
    request POST /_bulk application/x-ndjson)"
check "data stream bulk -> HTTP 200" "$status" 200
check "data stream bulk -> item statuses (create ok, index refused)" \
    "$(jq -c '[.items[] | to_entries[0] | [.key, .value.status]]' "$BODY")" '[["create",201],["create",201],["index",400]]'
check "data stream create lands in a .ds- backing index" \
    "$(jq -r '.items[0].create._index | startswith(".ds-'"$STREAM"'-")' "$BODY")" true

check "GET _data_stream -> 200" "$(request GET "/_data_stream/$STREAM")" 200
check "data stream is listed with @timestamp field" \
    "$(jq -r '.data_streams[0] | "\(.name) \(.timestamp_field.name)"' "$BODY")" "$STREAM @timestamp"
request POST "/$STREAM/_refresh" >/dev/null
check "_count of data stream -> 200" "$(request GET "/$STREAM/_count")" 200
check "_count of data stream" "$(jq -r .count "$BODY")" 2

# Leave a reused peer as we found it.
request DELETE "/_data_stream/$STREAM" >/dev/null
request DELETE "/_index_template/$TEMPLATE" >/dev/null
request DELETE "/$INDEX" >/dev/null

echo "opensearch smoke: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
