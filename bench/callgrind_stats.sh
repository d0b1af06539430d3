#!/usr/bin/env bash
# Instructions per request of unigate with statistics on (SQLite) and off, counted by callgrind:
# independent of the machine's load. Each configuration runs twice — 100 warm-up requests then
# SIGTERM, and the same plus N requests — and (I(N) - I(0)) / N is one request's cost.
# Every run uses the same PYTHONHASHSEED: string hashes decide how long dict probes are, and with
# random seeds the start-up alone differed by millions of instructions between runs, ±10 000 per
# request after the division (measured: +12 700 "per request" in dict lookups that were start-up).
#
#   bash bench/callgrind_stats.sh [N]        # N = 600 by default; ~10 min per run under valgrind
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-600}
WORK=$(mktemp -d)
cd "$ROOT"
node bench/fake_upstream.js 18090 >"$WORK/upstream.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null || true' EXIT
cat >"$WORK/api.yaml" <<YAML
providers:
  - provider: bench
    base_url: http://127.0.0.1:18090/v1
    api: sk-bench-upstream
    model: [gpt-4o]
api_keys:
  - api: sk-bench-client
    model: [all]
YAML
cat >"$WORK/client.py" <<'PY'
import asyncio, sys, httpx
async def main(n, c):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    sem = asyncio.Semaphore(c)
    async with httpx.AsyncClient(timeout=600) as client:
        async def one():
            async with sem:
                r = await client.post("http://127.0.0.1:18091/v1/chat/completions", json=body,
                                      headers={"authorization": "Bearer sk-bench-client"})
                assert r.status_code == 200, r.text
        await asyncio.gather(*(one() for _ in range(n)))
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
PY
run() {  # run NAME N ENV...
  local name=$1 n=$2; shift 2
  env "$@" PYTHONHASHSEED=0 DB_PATH="$WORK/stats-$name-$n.db" UNIGATE_STATS_FLUSH_INTERVAL=30 \
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$name.$n.out" \
    .venv/bin/python -m unigate serve --config "$WORK/api.yaml" --port 18091 --host 127.0.0.1 --workers 1 \
    >"$WORK/gw-$name-$n.log" 2>&1 &
  local gw=$!
  for _ in $(seq 1 1200); do curl -s -o /dev/null http://127.0.0.1:18091/healthz && break; sleep 1; done
  .venv/bin/python "$WORK/client.py" 100 8
  ((n == 0)) || .venv/bin/python "$WORK/client.py" "$n" 8
  kill -TERM $gw; wait $gw || true
  awk '/^summary:/ { print $2 }' "$WORK/cg.$name.$n.out"
}
on0=$(run on 0); onN=$(run on "$N"); off0=$(run off 0 DISABLE_DATABASE=true); offN=$(run off "$N" DISABLE_DATABASE=true)
awk -v a="$on0" -v b="$onN" -v c="$off0" -v d="$offN" -v n="$N" 'BEGIN {
  on = (b - a) / n; off = (d - c) / n
  printf "instructions per request: statistics on %.0f, off %.0f, added %.0f (%.1f %%)\n", on, off, on - off, (on - off) * 100 / off }'
echo "callgrind outputs in $WORK"
