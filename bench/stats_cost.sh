#!/usr/bin/env bash
# The cost of statistics: unigate with its defaults (SQLite statistics) against the same gateway
# with DISABLE_DATABASE=true, alternated ROUNDS times so that drift of the machine (CPU clock,
# neighbours) hits both alike. Each round is one `bench/run.sh` run of both targets, in
# alternating order; the report gives every round's server CPU µs/request and the medians.
#
#   bash bench/stats_cost.sh            # ROUNDS=4, BENCH_DURATION=10s by default
#
# Settings: ROUNDS, and everything bench/run.sh reads (BENCH_MODES, BENCH_DURATION, UNIGATE_REF …).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-4}
MODES=${BENCH_MODES:-"nonstream stream"}
declare -A CPU
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then order="unigate unigate-nostats"; else order="unigate-nostats unigate"; fi
  report=$(BENCH_TARGETS="$order" BENCH_OUT="" BENCH_MODES="$MODES" bash "$HERE/run.sh" 2>/dev/null)
  for target in unigate unigate-nostats; do
    label=$([[ $target == unigate ]] && echo "unigate" || echo "unigate, statistics off")
    for mode in $MODES; do
      cpu=$(awk -F'|' -v l=" $label " -v m=" $mode " '$2 == l && $3 == m { gsub(/ /, "", $8); print $8 }' <<<"$report")
      CPU[$target/$mode]+="${cpu:-nan} "
    done
  done
  echo "[stats_cost] round $round/$ROUNDS done ($order)" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "| mode | statistics on: CPU µs/req per round | median | off: per round | median | added µs | added % |"
echo "|---|---|---:|---|---:|---:|---:|"
for mode in $MODES; do
  on=${CPU[unigate/$mode]} off=${CPU[unigate-nostats/$mode]}
  mon=$(median <<<"$on") moff=$(median <<<"$off")
  echo "| $mode | $on | $mon | $off | $moff | $(awk "BEGIN { printf \"%.1f\", $mon - $moff }") | $(awk "BEGIN { printf \"%.1f\", ($mon - $moff) * 100 / $moff }") |"
done
