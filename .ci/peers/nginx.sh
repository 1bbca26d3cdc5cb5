#!/usr/bin/env bash
# Installs Debian's nginx for tests/elasticsearch_tls_front.rs (a TLS front with client-certificate
# verification in front of the OpenSearch peer). Idempotent: returns at once when `nginx` is on PATH
# or in /usr/sbin. Never enables or starts the system service: the test runs its own nginx as a
# child with a private config, pid file and logs.
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; then
	exit 0
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "nginx.sh: not root and no sudo; install nginx by hand" >&2; exit 1; }
	sudo="sudo"
fi

# Debian 12's `nginx` is the core binary with the ssl and proxy modules the test needs;
# nginx-light there is `nginx` plus an extra module, so it is only the fallback for releases
# where `nginx` is not offered.
pkg=nginx
policy_out="$(apt-cache policy nginx 2>/dev/null || true)"
if [[ "$policy_out" != *"Candidate: "[0-9]* ]]; then
	pkg=nginx-light
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps dpkg from starting the service during the install.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e "$policy" ]]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod +x "$policy"
	added_policy=1
fi
trap 'if [[ $added_policy == 1 ]]; then $sudo rm -f "$policy"; fi' EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || { echo "nginx.sh: $pkg installed but no nginx binary" >&2; exit 1; }
echo "nginx.sh: installed $pkg ($(/usr/sbin/nginx -v 2>&1))"
