#!/usr/bin/env bash
# Installs what the OpenSearch test peer (tests/peers/opensearch) needs when it is missing:
# a JDK 17+ (`java`) and Maven (`mvn`), from Debian's packages. Idempotent: returns at once when
# both are on PATH. The tests fail, rather than skip, when these are missing (unless
# SKIDDER_SKIP_OPENSEARCH=1), so CI must run this first.
set -euo pipefail

if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
	exit 0
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "java.sh: not root and no sudo; install a JDK 17+ and maven by hand" >&2; exit 1; }
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends default-jdk-headless maven >/dev/null
command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || { echo "java.sh: installed, but java or mvn is still not on PATH" >&2; exit 1; }
echo "java.sh: installed $(java -version 2>&1 | head -n 1); $(mvn -v 2>/dev/null | head -n 1)"
