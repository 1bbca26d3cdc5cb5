#!/usr/bin/env bash
# Installs Debian's tinyproxy (a small HTTP forward and CONNECT proxy, written in C by people
# outside this project) for tests/elasticsearch_proxy.rs. Idempotent: returns at once when
# `tinyproxy` is on PATH or in /usr/bin. Only the binary package is installed; no service is
# enabled or started: the test runs its own tinyproxy as a child with a private config.
set -euo pipefail

if command -v tinyproxy >/dev/null 2>&1 || [[ -x /usr/bin/tinyproxy ]]; then
	exit 0
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "tinyproxy.sh: not root and no sudo; install tinyproxy by hand" >&2; exit 1; }
	sudo="sudo"
fi
# Debian 12 splits the binary (tinyproxy-bin) from the service package (tinyproxy).
pkg=tinyproxy-bin
if [[ "$(apt-cache policy tinyproxy-bin 2>/dev/null || true)" != *"Candidate: "[0-9]* ]]; then
	$sudo apt-get update -qq
	if [[ "$(apt-cache policy tinyproxy-bin 2>/dev/null || true)" != *"Candidate: "[0-9]* ]]; then
		pkg=tinyproxy
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
command -v tinyproxy >/dev/null 2>&1 || { echo "tinyproxy.sh: $pkg installed but no tinyproxy binary" >&2; exit 1; }
echo "tinyproxy.sh: installed $pkg ($(tinyproxy -v 2>&1 | head -1))"
