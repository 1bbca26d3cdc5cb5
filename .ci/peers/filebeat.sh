#!/usr/bin/env bash
# Builds Filebeat 7.17.29 from the Go module proxy into tests/peers/filebeat/bin/filebeat
# (see tests/peers/filebeat/README.md). Idempotent: skipped while go.mod, go.sum and main.go
# are unchanged and the binary is there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$(cd "$here/../../tests/peers/filebeat" && pwd)"
bin="$dir/bin/filebeat" stamp="$dir/bin/.skidder-src.sha256"
command -v go >/dev/null || { echo "filebeat.sh: go is not on PATH" >&2; exit 1; }
sum() { cat "$dir/go.mod" "$dir/go.sum" "$dir/main.go" | sha256sum; }
if [[ -x "$bin" && -f "$stamp" && "$(sum)" == "$(cat "$stamp")" ]]; then exit 0; fi
t0=$(date +%s)
mkdir -p "$dir/bin"
(cd "$dir" && GOFLAGS=-mod=readonly go build -o "$bin.tmp" . && mv "$bin.tmp" "$bin")
sum >"$stamp"
"$bin" version | sed 's/^/filebeat.sh: built /'
echo "filebeat.sh: $(( $(date +%s) - t0 ))s"
