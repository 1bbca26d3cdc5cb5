#!/usr/bin/env bash
# Builds Filebeat 7.17.29 with its x-pack http_endpoint input (tests/peers/filebeat/httpendpoint)
# into tests/peers/filebeat/bin/filebeat-http, for the HTTP intake benchmark (bench/http_intake.sh).
# Same module and go.sum as .ci/peers/filebeat.sh; idempotent like it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$(cd "$here/../../tests/peers/filebeat" && pwd)"
bin="$dir/bin/filebeat-http" stamp="$dir/bin/.skidder-http-src.sha256"
command -v go >/dev/null || { echo "filebeat-http.sh: go is not on PATH" >&2; exit 1; }
sum() { cat "$dir/go.mod" "$dir/go.sum" "$dir/httpendpoint/main.go" | sha256sum; }
if [[ -x "$bin" && -f "$stamp" && "$(sum)" == "$(cat "$stamp")" ]]; then exit 0; fi
t0=$(date +%s)
mkdir -p "$dir/bin"
(cd "$dir" && GOFLAGS=-mod=readonly go build -o "$bin.tmp" ./httpendpoint && mv "$bin.tmp" "$bin")
sum >"$stamp"
"$bin" version | sed 's/^/filebeat-http.sh: built /'
echo "filebeat-http.sh: $(( $(date +%s) - t0 ))s"
