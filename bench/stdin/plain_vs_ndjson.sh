#!/usr/bin/env bash
# CPU of the stdin input for the same lines as plain text and as NDJSON (issue 19: plain
# lines cost more; the suspect was the JSON escaping of `message`). Each run feeds N lines of
# the harness corpus to `skidder run` (stdin → memory queue → output.discard) and reads
# cpu_s from its totals line; the modes alternate (plain, ndjson, plain, ...) and medians
# are printed. Several binaries may be given (e.g. before/after a change): all alternate.
#
#   bash bench/stdin/plain_vs_ndjson.sh [-n EVENTS] [-r RUNS] BINARY...
#
# Needs the corpus the harness writes (target/bench/work/corpus.ndjson; any skidder-bench
# run makes it). The expanded input lives in a temp dir, deleted at exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
n=1000000
runs=5
while getopts "n:r:" opt; do
	case "$opt" in
	n) n="$OPTARG" ;;
	r) runs="$OPTARG" ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || { echo "usage: $0 [-n EVENTS] [-r RUNS] BINARY..." >&2; exit 2; }
corpus="$root/target/bench/work/corpus.ndjson"
[[ -f "$corpus" ]] || { echo "no $corpus: run skidder-bench once first" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
lines=$(wc -l <"$corpus")
reps=$(((n + lines - 1) / lines))
# head closes the pipe early on purpose; the writer's SIGPIPE is not a failure.
{ for _ in $(seq "$reps"); do cat "$corpus"; done | head -n "$n" >"$work/input"; } || true
[[ $(wc -l <"$work/input") == "$n" ]] || { echo "could not write $n input lines" >&2; exit 1; }
for mode in plain ndjson; do
	json=false
	[[ $mode == ndjson ]] && json=true
	cat >"$work/$mode.yml" <<YML
skidder.inputs:
  - type: stdin
    json: $json
output.discard: {}
YML
done
declare -A cpu
for r in $(seq "$runs"); do
	for bin in "$@"; do
		for mode in plain ndjson; do
			err="$work/err"
			"$bin" run -e -c "$work/$mode.yml" --path.data "$work/data" <"$work/input" >/dev/null 2>"$err" || {
				echo "run failed ($bin $mode):" >&2
				tail -5 "$err" >&2
				exit 1
			}
			c=$(grep -o 'cpu_s=[0-9.]*' "$err" | tail -1 | cut -d= -f2)
			cpu["$bin|$mode"]+="$c "
		done
	done
	echo "round $r/$runs done" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '| binary | plain CPU-s per M lines | NDJSON CPU-s per M lines | plain / NDJSON |\n|---|---:|---:|---:|\n'
for bin in "$@"; do
	p=$(echo "${cpu[$bin|plain]}" | median)
	j=$(echo "${cpu[$bin|ndjson]}" | median)
	awk -v b="$bin" -v p="$p" -v j="$j" -v n="$n" 'BEGIN { printf "| %s | %.2f | %.2f | %.2f |\n", b, p*1e6/n, j*1e6/n, p/j }'
done
