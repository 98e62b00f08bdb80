#!/usr/bin/env bash
# Instructions per request through the core pipeline (the cases of shared/benches/pipeline.rs),
# counted by callgrind. Unlike time, the count does not move with this VM's noise, so a change of
# a few percent shows where criterion cannot separate it. Per request = (count at 1,100
# iterations - count at 100) / 1,000, which takes out the harness's setup. callgrind runs SHA-256
# in software, as wasm does. Prints a markdown table; skipped (saying so) without valgrind.
# ASC_CORE_BASELINE_BIN: another build of the pipeline bench binary (e.g. an earlier commit's,
# built with `cargo bench -p asc-core --bench pipeline --no-run`), counted in the same table.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v valgrind >/dev/null; then
  echo "(skipped: no valgrind on this machine)"
  exit 0
fi
bin=$(cargo bench -p asc-core --bench pipeline --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "(skipped: the pipeline bench did not build)"; exit 0; }
count() { # binary case iterations -> instructions of the whole run
  ASC_BENCH_CASE="$2" ASC_BENCH_ITERATIONS="$3" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$1" --bench no-criterion-case 2>&1 | awk '/Collected/ {print $4}' | sort -n | tail -1
}
per_request() { echo $(( ($(count "$1" "$2" 1100) - $(count "$1" "$2" 100)) / 1000 )); }
base=${ASC_CORE_BASELINE_BIN:-}
if [ -n "$base" ]; then
  echo "| case | instructions/request | baseline build | change |"
  echo "|---|---|---|---|"
else
  echo "| case | instructions/request |"
  echo "|---|---|"
fi
for c in "openai->openai plain" "openai->openai guardrails+budget" "openai->anthropic"; do
  now=$(per_request "$bin" "$c")
  if [ -n "$base" ]; then
    then=$(per_request "$base" "$c")
    echo "| $c | $now | $then | $(awk -v a="$now" -v b="$then" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }') |"
  else
    echo "| $c | $now |"
  fi
done
