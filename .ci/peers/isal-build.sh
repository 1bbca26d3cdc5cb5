#!/usr/bin/env bash
# Installs what building ISA-L (the isal-sys crate behind skidder's default `isal` feature,
# output.logstash's deflate backend) needs: nasm for its assembly, and autoconf, automake,
# libtool and make for its configure script. Debian packages; idempotent: returns at once
# when all are on PATH. .ci/run calls it before the first cargo command, .ci/test too.
set -euo pipefail

missing=()
for tool in nasm autoconf automake libtoolize make; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} == 0 ]]; then
	exit 0
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "isal-build.sh: missing ${missing[*]}; not root and no sudo: install nasm autoconf automake libtool make by hand, or build with --no-default-features --features libdeflate" >&2
		exit 1
	}
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends nasm autoconf automake libtool make >/dev/null
for tool in nasm autoconf automake libtoolize make; do
	command -v "$tool" >/dev/null 2>&1 || { echo "isal-build.sh: $tool still missing after apt-get install" >&2; exit 1; }
done
echo "isal-build.sh: installed nasm $(nasm -v | awk '{print $3}'), autoconf, automake, libtool"
