#!/usr/bin/env bash
# Installs Debian's curl for the HTTP endpoint tests (tests/http_intake.rs, tests/http_monitoring.rs
# post and read with curl as well as with reqwest). Idempotent: returns at once when curl is on PATH.
set -euo pipefail
command -v curl >/dev/null 2>&1 && exit 0
sudo=""
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "curl.sh: not root and no sudo; install curl by hand" >&2; exit 1; }
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends curl >/dev/null
command -v curl >/dev/null
