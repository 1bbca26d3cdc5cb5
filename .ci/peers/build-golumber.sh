#!/usr/bin/env bash
# Builds the go-lumber test peer into tests/peers/golumber/bin/golumber.
# Needs only the Go toolchain and the module proxy; go.sum is committed, so the
# build is reproducible and fails if a dependency would change. Re-running is
# cheap: Go's build cache makes an unchanged build a no-op.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root/tests/peers/golumber"
command -v go >/dev/null || { echo "build-golumber: the Go toolchain (go) is not on PATH" >&2; exit 1; }
mkdir -p bin
go build -trimpath -o bin/golumber .
echo "built $(pwd)/bin/golumber"
