#!/usr/bin/env bash
# unigate benchmark: bare fake upstream vs unigate (1 worker) vs LiteLLM proxy (1 worker).
#
#   bash bench/run.sh            # writes a markdown report to stdout and bench/results/latest.md
#
# Layout on a 2-core box: wrk and the fake upstream (Node) share core 0, the gateway under test
# runs alone on core 1 (taskset). The gateways are started one at a time, against the same
# upstream. For each target and mode (non-streaming, streaming): a sanity request checked with
# curl, a warm-up wrk run, then BENCH_REPEATS measured wrk runs. Around each measured run the
# server's CPU time (utime+stime of its whole process group from /proc/PID/stat) is read, giving
# CPU time per completed request. Idle RSS (VmRSS) is read right after the server answers its
# first (readiness) request. See docs/performance.md for the method.
#
# Settings (environment):
#   BENCH_TARGETS="bare unigate unigate-nostats litellm"   BENCH_MODES="nonstream stream"
#                                          (unigate-nostats: the same gateway with DISABLE_DATABASE=true;
#                                          unigate writes its statistics to a fresh SQLite file per run)
#   BENCH_THREADS=1  BENCH_CONNECTIONS=32  BENCH_DURATION=10s  BENCH_WARMUP=3s  BENCH_REPEATS=1
#   BENCH_WRK_TIMEOUT=30s                  per-request timeout inside wrk
#   BENCH_LOAD_CPU=0  BENCH_GATEWAY_CPU=1  cores for wrk+upstream and for the gateway
#   BENCH_UPSTREAM_PORT=18080  BENCH_UNIGATE_PORT=18081  BENCH_LITELLM_PORT=18082
#   BENCH_READY_TIMEOUT=120                seconds to wait for a server to answer
#   BENCH_INCLUDE_USAGE=1                  streaming requests ask for stream_options.include_usage
#   BENCH_OUT=bench/results/latest.md      where the report is written ("" = stdout only)
#   BENCH_KEEP_LOGS=0                      1 = keep the work dir (configs, server and wrk logs)
#   UNIGATE_CMD="uv run unigate"           how to launch unigate (run from the repo root)
#   UNIGATE_REF=                           e.g. HEAD: bench that commit instead of the work tree
#                                          (`git archive` into the work dir, run with the project's
#                                          .venv python and PYTHONPATH; git state is not touched)
#   UNIGATE_CONFIG=                        use this api.yaml instead of the generated one
#   UNIGATE_BASE_URL=http://127.0.0.1:PORT/v1   provider base_url in the generated config
#   UNIGATE_EXTRA_ENV="DISABLE_DATABASE=true"   extra KEY=VALUE pairs for the unigate process
#   LITELLM_EXTRA_ENV=""                   extra KEY=VALUE pairs for the LiteLLM process
#   LITELLM_VENV=bench/.litellm-venv       created with `python3 -m venv` + pip if missing
#   LITELLM_SPEC='litellm[proxy]'          what pip installs there
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

TARGETS=${BENCH_TARGETS:-"bare unigate unigate-nostats litellm"}
MODES=${BENCH_MODES:-"nonstream stream"}
THREADS=${BENCH_THREADS:-1}
CONNS=${BENCH_CONNECTIONS:-32}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-3s}
REPEATS=${BENCH_REPEATS:-1}
WRK_TIMEOUT=${BENCH_WRK_TIMEOUT:-30s}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
GATEWAY_CPU=${BENCH_GATEWAY_CPU:-1}
UPSTREAM_PORT=${BENCH_UPSTREAM_PORT:-18080}
UNIGATE_PORT=${BENCH_UNIGATE_PORT:-18081}
LITELLM_PORT=${BENCH_LITELLM_PORT:-18082}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-120}
INCLUDE_USAGE=${BENCH_INCLUDE_USAGE:-1}
OUT=${BENCH_OUT-$HERE/results/latest.md}
KEEP_LOGS=${BENCH_KEEP_LOGS:-0}
UNIGATE_CMD=${UNIGATE_CMD:-"uv run unigate"}
UNIGATE_CONFIG=${UNIGATE_CONFIG:-}
UNIGATE_REF=${UNIGATE_REF:-}
UNIGATE_BASE_URL=${UNIGATE_BASE_URL:-"http://127.0.0.1:$UPSTREAM_PORT/v1"}
UNIGATE_EXTRA_ENV=${UNIGATE_EXTRA_ENV:-}
LITELLM_EXTRA_ENV=${LITELLM_EXTRA_ENV:-}
LITELLM_VENV=${LITELLM_VENV:-$HERE/.litellm-venv}
LITELLM_SPEC=${LITELLM_SPEC:-'litellm[proxy]'}

CLIENT_KEY=sk-bench-client
UPSTREAM_KEY=sk-bench-upstream
MODEL=gpt-4o
CLK_TCK=$(getconf CLK_TCK)
export NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes and cleanup
PIDS=()        # process-group leaders we started, in start order
LAST_PID=

start_bg() {   # start_bg LOGFILE CMD...  -> LAST_PID, the leader of a new process group
  local logfile=$1; shift
  set -m        # job control on just for this: the job gets its own process group (pgid == pid)
  "$@" >"$logfile" 2>&1 </dev/null &
  LAST_PID=$!
  set +m        # ...and off again, so bash prints no job notices and Ctrl-C reaches the script
  PIDS+=("$LAST_PID")
}

stop_pg() {    # stop_pg PID: TERM its process group, wait (bounded), then KILL
  local pid=$1 i
  kill -0 -- "-$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do           # up to 10 s
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/unigate-bench.XXXXXX")
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pg "${PIDS[i]}"; done
  if [[ $KEEP_LOGS == 1 || $rc != 0 ]]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- /proc helpers
pg_cpu_ticks() {   # utime+stime (clock ticks) summed over every live process of a process group
  local pg=$1 total=0 f line rest
  local -a a
  for f in /proc/[0-9]*/stat; do
    { line=$(<"$f"); } 2>/dev/null || continue
    rest=${line##*) }
    read -r -a a <<<"$rest"
    if [[ ${a[2]} == "$pg" ]]; then total=$((total + a[11] + a[12])); fi
  done
  echo "$total"
}

pg_pids() {        # pids of the live processes of a process group, one a line
  local pg=$1 f line rest
  local -a a
  for f in /proc/[0-9]*/stat; do
    { line=$(<"$f"); } 2>/dev/null || continue
    rest=${line##*) }
    read -r -a a <<<"$rest"
    if [[ ${a[2]} == "$pg" ]]; then echo "${f//[^0-9]/}"; fi
  done
}

core_ticks() {     # "busy total" jiffies of one CPU core from /proc/stat
  awk -v c="cpu$1" '$1 == c { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

listener_pid() {   # pid of the process listening on 127.0.0.1:PORT (or any address)
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

rss_mib() {        # VmRSS of a pid in MiB (one decimal)
  awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

wait_ready() {     # wait_ready NAME PID URL: poll until the server answers any HTTP status
  local name=$1 pid=$2 url=$3 code i tries
  tries=$((READY_TIMEOUT * 5))
  for ((i = 0; i < tries; i++)); do
    kill -0 "$pid" 2>/dev/null || { log "$name exited before it was ready"; return 1; }
    code=$(curl -s --noproxy '*' -o /dev/null -m 2 -w '%{http_code}' \
      -H "Authorization: Bearer $CLIENT_KEY" "$url" 2>/dev/null || true)
    if [[ -n $code && $code != 000 ]]; then
      log "$name ready after ~$((i / 5)).$((i % 5 * 2))s (HTTP $code from $url)"
      return 0
    fi
    sleep 0.2
  done
  log "$name not ready after ${READY_TIMEOUT}s"
  return 1
}

# ---------------------------------------------------------------- request bodies (same as chat.lua)
request_body() {   # request_body MODE
  local b='{"model":"'$MODEL'","messages":[{"role":"system","content":"You are a helpful assistant."},'
  b+='{"role":"user","content":"Say hello in one short sentence."}],"temperature":0.2,"max_tokens":64'
  if [[ $1 == stream ]]; then
    b+=',"stream":true'
    if [[ $INCLUDE_USAGE == 1 ]]; then b+=',"stream_options":{"include_usage":true}'; fi
  fi
  echo "$b}"
}

sanity_check() {   # sanity_check BASEURL MODE -> 0 if the answer looks right; reason in SANITY_MSG
  local base=$1 mode=$2 body_file="$WORK/sanity.$RANDOM" code
  SANITY_MSG=
  code=$(curl -sS --noproxy '*' -m 120 -o "$body_file" -w '%{http_code}' \
    -H "Authorization: Bearer $CLIENT_KEY" -H 'Content-Type: application/json' \
    -d "$(request_body "$mode")" "$base/v1/chat/completions" 2>>"$WORK/curl.err" || true)
  if [[ $code != 200 ]]; then
    SANITY_MSG="HTTP $code: $(head -c 300 "$body_file" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  if [[ $mode == stream ]]; then
    grep -q 'data: \[DONE\]' "$body_file" || { SANITY_MSG="stream without data: [DONE]"; return 1; }
    grep -qE '"content": ?"Hello"' "$body_file" || { SANITY_MSG="stream without the upstream's content"; return 1; }
    if [[ $INCLUDE_USAGE == 1 ]] && ! grep -q '"usage"' "$body_file"; then
      SANITY_MSG="warning: stream has no usage chunk"
    fi
  else
    grep -q 'Hello! How can I help you today?' "$body_file" || { SANITY_MSG="unexpected body: $(head -c 300 "$body_file")"; return 1; }
  fi
  return 0
}

# ---------------------------------------------------------------- wrk
duration_secs() {  # 10s / 2m / 10 -> seconds
  local d=$1
  case $d in
    *ms) echo 1 ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
  esac
}

run_wrk() {        # run_wrk BASEURL MODE DURATION OUTFILE
  local base=$1 mode=$2 dur=$3 out=$4 limit
  limit=$(($(duration_secs "$dur") + 60))
  BENCH_STREAM=$([[ $mode == stream ]] && echo 1 || echo 0) \
  BENCH_INCLUDE_USAGE=$INCLUDE_USAGE BENCH_KEY=$CLIENT_KEY BENCH_MODEL=$MODEL \
    timeout "$limit" taskset -c "$LOAD_CPU" \
    wrk -t"$THREADS" -c"$CONNS" -d"$dur" --timeout "$WRK_TIMEOUT" --latency \
    -s "$HERE/chat.lua" "$base" >"$out" 2>&1 || true
}

result_field() {   # result_field FILE NAME -> value from the BENCH_RESULT line
  grep '^BENCH_RESULT' "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# ---------------------------------------------------------------- results store
declare -A R       # R[target/mode/field]
declare -A T       # T[target/field]
SEEN_TARGETS=()

fmt() { LC_ALL=C printf "%.${2:-1}f" "$1"; }
calc() { LC_ALL=C awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }

measure() {        # measure TARGET BASEURL SERVER_PGID
  local target=$1 base=$2 pg=$3 mode r out c0 c1 u0 u1 req sc0 sc1 conns
  local gb0 gt0 gb1 gt1 lb0 lt0 lb1 lt1 gbusy lbusy
  local -a rows
  for mode in $MODES; do
    local key="$target/$mode"
    if ! sanity_check "$base" "$mode"; then
      log "$target $mode: sanity check FAILED: $SANITY_MSG"
      R[$key/status]="FAILED: ${SANITY_MSG//|/\\|}"
      continue
    fi
    if [[ -n $SANITY_MSG ]]; then log "$target $mode: $SANITY_MSG"; R[$key/note]=$SANITY_MSG; fi
    log "$target $mode: warm-up $WARMUP"
    run_wrk "$base" "$mode" "$WARMUP" "$WORK/wrk.$target.$mode.warmup.txt"
    rows=()
    for ((r = 1; r <= REPEATS; r++)); do
      out="$WORK/wrk.$target.$mode.$r.txt"
      read -r sc0 _ <<<"$(upstream_stats)"
      read -r gb0 gt0 <<<"$(core_ticks "$GATEWAY_CPU")"; read -r lb0 lt0 <<<"$(core_ticks "$LOAD_CPU")"
      c0=$(pg_cpu_ticks "$pg"); u0=$(pg_cpu_ticks "$UPSTREAM_PID")
      run_wrk "$base" "$mode" "$DURATION" "$out"
      c1=$(pg_cpu_ticks "$pg"); u1=$(pg_cpu_ticks "$UPSTREAM_PID")
      read -r gb1 gt1 <<<"$(core_ticks "$GATEWAY_CPU")"; read -r lb1 lt1 <<<"$(core_ticks "$LOAD_CPU")"
      read -r sc1 _ <<<"$(upstream_stats)"
      req=$(result_field "$out" requests)
      if [[ -z $req || $req == 0 ]]; then
        log "$target $mode: run $r completed no request; wrk said: $(head -c 400 "$out" | tr '\n' ' ')"
        continue
      fi
      local errs=$(($(result_field "$out" errors_connect) + $(result_field "$out" errors_read) \
        + $(result_field "$out" errors_write) + $(result_field "$out" errors_status) \
        + $(result_field "$out" errors_timeout)))
      # new upstream TCP connections per 1000 client requests (bare: wrk's own connections)
      conns=$(calc "(${sc1:-0} - ${sc0:-0}) * 1000 / $req" 1)
      # how busy both cores were (everything on them, ours and other people's)
      lbusy=$(calc "100 * ($lb1 - $lb0) / (($lt1 - $lt0) > 0 ? ($lt1 - $lt0) : 1)" 0)
      gbusy=$(calc "100 * ($gb1 - $gb0) / (($gt1 - $gt0) > 0 ? ($gt1 - $gt0) : 1)" 0)
      # fields: rps p50 p99 errors requests cpu_us_per_req cpu_util upstream_cpu_us_per_req conns
      #         load_core_busy gw_core_busy
      local secs cpu_us ucpu_us util
      secs=$(result_field "$out" duration_s)
      cpu_us=$(calc "($c1 - $c0) * 1000000 / $CLK_TCK / $req" 1)
      ucpu_us=$(calc "($u1 - $u0) * 1000000 / $CLK_TCK / $req" 1)
      util=$(calc "($c1 - $c0) / $CLK_TCK / $secs * 100" 0)
      rows+=("$(result_field "$out" rps) $(result_field "$out" p50_ms) $(result_field "$out" p99_ms) $errs $req $cpu_us $util $ucpu_us $conns $lbusy $gbusy")
      log "$target $mode run $r: $(result_field "$out" rps) req/s, p50 $(result_field "$out" p50_ms) ms, p99 $(result_field "$out" p99_ms) ms, errors $errs, server CPU ${cpu_us} us/req (${util}% of a core); cores busy: load ${lbusy}%, gateway ${gbusy}%"
    done
    if ((${#rows[@]} == 0)); then R[$key/status]="FAILED: no completed requests"; continue; fi
    # report the median run (by rps) and the rps range over all runs
    local sorted median
    sorted=$(printf '%s\n' "${rows[@]}" | sort -n -k1,1)
    median=$(sed -n "$(((${#rows[@]} + 1) / 2))p" <<<"$sorted")
    read -r R[$key/rps] R[$key/p50] R[$key/p99] R[$key/errors] R[$key/requests] \
      R[$key/cpu_us] R[$key/util] R[$key/ucpu_us] R[$key/conns] R[$key/lbusy] R[$key/gbusy] <<<"$median"
    R[$key/rps_min]=$(head -1 <<<"$sorted" | cut -d' ' -f1)
    R[$key/rps_max]=$(tail -1 <<<"$sorted" | cut -d' ' -f1)
    R[$key/runs]=${#rows[@]}
    R[$key/status]=ok
  done
}

upstream_stats() { # "connections requests" as counted by the fake upstream
  curl -s --noproxy '*' -m 5 "http://127.0.0.1:$UPSTREAM_PORT/_bench/stats" 2>/dev/null \
    | sed -n 's/.*"connections":\([0-9]*\),"requests":\([0-9]*\).*/\1 \2/p'
}

net_check() {      # non-loopback TCP sockets owned by a process group, right now
  local pg=$1 pids
  pids=$(pg_pids "$pg" | paste -sd'|')
  [[ -z $pids ]] && { echo 0; return; }
  ss -Htnp 2>/dev/null | grep -E "pid=($pids)," | awk '{print $5}' \
    | grep -vE '^(127\.|\[::1\]|\[::ffff:127\.)' | wc -l
}

bench_server() {   # bench_server TARGET PGID PORT LOGFILE
  local target=$1 pg=$2 port=$3 logfile=$4 lpid
  SEEN_TARGETS+=("$target")
  if ! wait_ready "$target" "$pg" "http://127.0.0.1:$port/v1/models"; then
    T[$target/status]="did not start (see log tail above)"
    log "---- last lines of $target log ----"; tail -n 30 "$logfile" >&2 || true
    return 1
  fi
  lpid=$(listener_pid "$port")
  [[ -n $lpid ]] || lpid=$pg
  T[$target/rss_idle]=$(rss_mib "$lpid")
  T[$target/threads]=$(awk '/^Threads:/ {print $2}' "/proc/$lpid/status" 2>/dev/null || echo "?")
  T[$target/procs]=$(pg_pids "$pg" | wc -l)
  measure "$target" "http://127.0.0.1:$port" "$pg"
  T[$target/rss_after]=$(rss_mib "$lpid")
  T[$target/net]=$(net_check "$pg")
  T[$target/status]=ok
}

# ---------------------------------------------------------------- prerequisites
command -v node >/dev/null || die "node is required (bench/fake_upstream.js)"
command -v curl >/dev/null || die "curl is required"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v ss >/dev/null || die "ss (iproute2) is required"
if ! command -v wrk >/dev/null; then
  [[ $(id -u) == 0 ]] || die "wrk is missing: apt-get install -y wrk"
  log "installing wrk from Debian"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >&2 \
    || die "could not install wrk"
fi
if [[ " $TARGETS " == *" litellm "* && ! -x $LITELLM_VENV/bin/litellm ]]; then
  log "creating $LITELLM_VENV with $LITELLM_SPEC (once; large download)"
  python3 -m venv "$LITELLM_VENV" >&2
  "$LITELLM_VENV/bin/pip" install -q --disable-pip-version-check "$LITELLM_SPEC" >&2 \
    || die "pip install $LITELLM_SPEC failed"
fi
NCPU=$(nproc)
if ((NCPU < 2)); then
  log "only $NCPU CPU: running everything on core 0 (numbers are not comparable to the 2-core layout)"
  GATEWAY_CPU=0
fi
for p in $UPSTREAM_PORT $UNIGATE_PORT $LITELLM_PORT; do
  port_free "$p" || die "port $p is in use; set BENCH_*_PORT"
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "work dir $WORK; targets: $TARGETS; modes: $MODES; wrk -t$THREADS -c$CONNS -d$DURATION (warm-up $WARMUP) x$REPEATS"

# ---------------------------------------------------------------- fake upstream (core LOAD_CPU)
start_bg "$WORK/upstream.log" taskset -c "$LOAD_CPU" node "$HERE/fake_upstream.js" "$UPSTREAM_PORT"
UPSTREAM_PID=$LAST_PID
wait_ready upstream "$UPSTREAM_PID" "http://127.0.0.1:$UPSTREAM_PORT/v1/models" || die "fake upstream did not start"

for target in $TARGETS; do
  case $target in
    bare)
      SEEN_TARGETS+=(bare)
      T[bare/rss_idle]=$(rss_mib "$UPSTREAM_PID")
      T[bare/threads]=$(awk '/^Threads:/ {print $2}' "/proc/$UPSTREAM_PID/status")
      T[bare/procs]=1
      measure bare "http://127.0.0.1:$UPSTREAM_PORT" "$UPSTREAM_PID"
      T[bare/rss_after]=$(rss_mib "$UPSTREAM_PID")
      T[bare/net]=0
      T[bare/status]=ok
      ;;
    unigate|unigate-nostats)
      cfg=$UNIGATE_CONFIG
      if [[ -z $cfg ]]; then
        cfg="$WORK/api.bench.yaml"
        cat >"$cfg" <<EOF
# generated by bench/run.sh
providers:
  - provider: bench
    base_url: $UNIGATE_BASE_URL
    api: $UPSTREAM_KEY
    model:
      - $MODEL

api_keys:
  - api: $CLIENT_KEY
    model:
      - all
EOF
      fi
      read -r -a ucmd <<<"$UNIGATE_CMD"
      read -r -a uenv <<<"$UNIGATE_EXTRA_ENV"
      if [[ $target == unigate-nostats ]]; then
        uenv+=(DISABLE_DATABASE=true)
      else   # statistics on, in a fresh SQLite file per run (the default store, the default settings)
        uenv=(DB_PATH="$WORK/stats.db" "${uenv[@]}")
      fi
      if [[ -n $UNIGATE_REF ]]; then
        UNIGATE_SHA=$(git -C "$ROOT" rev-parse --short "$UNIGATE_REF^{commit}") || die "bad UNIGATE_REF $UNIGATE_REF"
        mkdir -p "$WORK/src"
        git -C "$ROOT" archive --format=tar "$UNIGATE_REF" unigate | tar -x -C "$WORK/src"
        ucmd=("$ROOT/.venv/bin/python" -m unigate)
        uenv=(PYTHONPATH="$WORK/src" "${uenv[@]}")
        ucwd="$WORK/src"   # not the repo root: `python -m` puts the cwd ahead of PYTHONPATH
        got=$(cd "$ucwd" && env "${uenv[@]}" "${ucmd[0]}" -c 'import unigate; print(unigate.__file__)')
        [[ $got == "$WORK/src/"* ]] || die "UNIGATE_REF: python imports unigate from $got, not the export"
        log "benching unigate at $UNIGATE_REF ($UNIGATE_SHA) from $WORK/src"
      else
        ucwd=$ROOT
      fi
      serve_args=(serve --config "$cfg" --port "$UNIGATE_PORT" --workers 1)
      # bind loopback only if this unigate knows --host
      if (cd "$ucwd" && timeout 60 env "${uenv[@]}" "${ucmd[@]}" serve --help </dev/null 2>/dev/null | grep -q -- '--host'); then
        serve_args+=(--host 127.0.0.1)
      fi
      log "starting unigate: ${uenv[*]:-} ${ucmd[*]} ${serve_args[*]} (core $GATEWAY_CPU)"
      start_bg "$WORK/unigate.log" env -C "$ucwd" "${uenv[@]}" taskset -c "$GATEWAY_CPU" \
        "${ucmd[@]}" "${serve_args[@]}"
      UG_PID=$LAST_PID
      bench_server "$target" "$UG_PID" "$UNIGATE_PORT" "$WORK/unigate.log" || true
      stop_pg "$UG_PID"
      ;;
    litellm)
      cfg="$WORK/litellm.yaml"
      cat >"$cfg" <<EOF
# generated by bench/run.sh
model_list:
  - model_name: $MODEL
    litellm_params:
      model: openai/$MODEL
      api_base: http://127.0.0.1:$UPSTREAM_PORT/v1
      api_key: $UPSTREAM_KEY
litellm_settings:
  telemetry: false
general_settings:
  master_key: $CLIENT_KEY
EOF
      read -r -a lenv <<<"$LITELLM_EXTRA_ENV"
      log "starting LiteLLM proxy (core $GATEWAY_CPU)"
      start_bg "$WORK/litellm.log" env -C "$WORK" -u DATABASE_URL -u REDIS_HOST -u REDIS_URL \
        LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False ANONYMIZED_TELEMETRY=False \
        "${lenv[@]}" taskset -c "$GATEWAY_CPU" \
        "$LITELLM_VENV/bin/litellm" --config "$cfg" --host 127.0.0.1 --port "$LITELLM_PORT" \
        --num_workers 1 --telemetry False
      LT_PID=$LAST_PID
      bench_server litellm "$LT_PID" "$LITELLM_PORT" "$WORK/litellm.log" || true
      T[litellm/netlog]=$(grep -ciE 'ConnectError|Name or service not known|Failed to fetch|Temporary failure in name resolution' "$WORK/litellm.log" || true)
      stop_pg "$LT_PID"
      ;;
    *) die "unknown target $target (bare, unigate, unigate-nostats, litellm)" ;;
  esac
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
pyver() { "$1" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo "?"; }
pkgvers() {        # pkgvers PYTHON PKG... -> "pkg x.y, ..."
  local py=$1; shift
  "$py" - "$@" <<'EOF' 2>/dev/null || echo "?"
import sys
from importlib import metadata
out = []
for name in sys.argv[1:]:
    try:
        out.append(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        out.append(f"{name} -")
print(", ".join(out))
EOF
}
UG_PY="$ROOT/.venv/bin/python"
UNIGATE_SHA=${UNIGATE_SHA:-}
LT_PY="$LITELLM_VENV/bin/python"
label() { case $1 in bare) echo "bare upstream (Node)" ;; unigate) echo "unigate" ;; unigate-nostats) echo "unigate, statistics off" ;; litellm) echo "LiteLLM proxy" ;; esac; }
ratio() {          # ratio A B -> A/B with 2 decimals, or n/a
  if [[ -n ${1:-} && -n ${2:-} ]] && awk "BEGIN { exit !($2 > 0) }"; then calc "$1 / $2" 2; else echo "n/a"; fi
}

report() {
  local t m k
  echo "# unigate benchmark results"
  echo
  echo "Generated by \`bash bench/run.sh\` at $STARTED_AT. Method: docs/performance.md."
  echo
  echo "Load: \`wrk -t$THREADS -c$CONNS -d$DURATION --latency\` (warm-up $WARMUP before each measured run," \
    "$REPEATS measured run(s) per row, median shown), POST /v1/chat/completions, model $MODEL." \
    "wrk + fake upstream on core $LOAD_CPU, gateway alone on core $GATEWAY_CPU (taskset)." \
    "Streaming rows: \`stream: true\`$([[ $INCLUDE_USAGE == 1 ]] && echo ', stream_options.include_usage'), role + 5 content + finish (+ usage) chunks + [DONE] per response."
  echo
  echo "| target | mode | req/s | p50 ms | p99 ms | errors | server CPU µs/req | server CPU % of core | upstream CPU µs/req | upstream conns / 1k req | core busy % load / gw | idle RSS MiB | RSS after MiB |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for t in "${SEEN_TARGETS[@]}"; do
    for m in $MODES; do
      k="$t/$m"
      if [[ ${R[$k/status]:-} == ok ]]; then
        local rps="${R[$k/rps]}"
        if ((${R[$k/runs]} > 1)); then rps="$rps (${R[$k/rps_min]}–${R[$k/rps_max]})"; fi
        echo "| $(label "$t") | $m | $rps | ${R[$k/p50]} | ${R[$k/p99]} | ${R[$k/errors]} | ${R[$k/cpu_us]} | ${R[$k/util]} | ${R[$k/ucpu_us]} | ${R[$k/conns]} | ${R[$k/lbusy]} / ${R[$k/gbusy]} | ${T[$t/rss_idle]:-?} | ${T[$t/rss_after]:-?} |"
      else
        echo "| $(label "$t") | $m | ${R[$k/status]:-${T[$t/status]:-not run}} | | | | | | | | | ${T[$t/rss_idle]:-} | |"
      fi
    done
  done
  echo
  echo "For the bare upstream, \"server\" is the Node process itself (sharing core $LOAD_CPU with wrk)."
  echo "\"server CPU µs/req\" = (utime+stime of the server's process group over the measured run) / requests completed;"
  echo "\"server CPU % of core\" well below 100 for a gateway means it was not CPU-bound or shared its core with other work;"
  echo "\"core busy %\" is how busy core $LOAD_CPU (wrk + upstream) and core $GATEWAY_CPU (gateway) were in total: on a gateway row,"
  echo "gw-core busy minus server CPU % is other processes' share of the gateway's core (noise from concurrent work on the machine)."
  echo "\"upstream conns / 1k req\" = new TCP connections the fake upstream accepted per 1000 requests (≈0 = the gateway pools upstream connections)."
  echo
  if [[ " ${SEEN_TARGETS[*]} " == *" unigate "* ]]; then
    echo "## Ratios"
    echo
    echo "| mode | rps unigate/LiteLLM | CPU/req unigate/LiteLLM | rps unigate/bare | CPU/req unigate/bare | p50 unigate/LiteLLM |"
    echo "|---|---:|---:|---:|---:|---:|"
    for m in $MODES; do
      echo "| $m | $(ratio "${R[unigate/$m/rps]:-}" "${R[litellm/$m/rps]:-}") | $(ratio "${R[unigate/$m/cpu_us]:-}" "${R[litellm/$m/cpu_us]:-}") | $(ratio "${R[unigate/$m/rps]:-}" "${R[bare/$m/rps]:-}") | $(ratio "${R[unigate/$m/cpu_us]:-}" "${R[bare/$m/cpu_us]:-}") | $(ratio "${R[unigate/$m/p50]:-}" "${R[litellm/$m/p50]:-}") |"
    done
    echo
    echo "rps: higher is better for unigate; CPU/req and p50: lower is better."
    echo
  fi
  if [[ " ${SEEN_TARGETS[*]} " == *" unigate-nostats "* && " ${SEEN_TARGETS[*]} " == *" unigate "* ]]; then
    echo "## Cost of statistics"
    echo
    echo "| mode | CPU µs/req, statistics on | off | added µs/req | added % | rps on / off |"
    echo "|---|---:|---:|---:|---:|---:|"
    for m in $MODES; do
      local on=${R[unigate/$m/cpu_us]:-} off=${R[unigate-nostats/$m/cpu_us]:-}
      if [[ -n $on && -n $off ]]; then
        echo "| $m | $on | $off | $(calc "$on - $off" 1) | $(calc "($on - $off) * 100 / $off" 1) | $(ratio "${R[unigate/$m/rps]:-}" "${R[unigate-nostats/$m/rps]:-}") |"
      fi
    done
    echo
    echo "Statistics on = the default: records to SQLite (WAL) through the batched writer, in the same process and core."
    echo
  fi
  echo "## Processes"
  echo
  echo "| target | status | processes | threads (server) | non-loopback TCP sockets after run |"
  echo "|---|---|---:|---:|---:|"
  for t in "${SEEN_TARGETS[@]}"; do
    echo "| $(label "$t") | ${T[$t/status]:-?} | ${T[$t/procs]:-?} | ${T[$t/threads]:-?} | ${T[$t/net]:-?} |"
  done
  if [[ -n ${T[litellm/netlog]:-} ]]; then
    echo
    echo "LiteLLM log lines mentioning failed outbound fetches: ${T[litellm/netlog]}."
  fi
  for t in "${SEEN_TARGETS[@]}"; do
    for m in $MODES; do
      if [[ -n ${R[$t/$m/note]:-} ]]; then echo; echo "Note ($t $m): ${R[$t/$m/note]}"; fi
    done
  done
  echo
  echo "## Machine"
  echo
  echo "- CPUs: $NCPU × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -r)"
  echo "- Load average before / after: $LOAD_BEFORE / $LOAD_AFTER (other work on the machine adds noise)"
  echo "- wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}'); Node $(node --version); curl $(curl --version | head -1 | awk '{print $2}')"
  if [[ -n $UNIGATE_REF ]]; then
    echo "- unigate: commit $UNIGATE_SHA ($UNIGATE_REF, exported with git archive), started as \`${UNIGATE_EXTRA_ENV:+$UNIGATE_EXTRA_ENV }python -m unigate serve --workers 1\`"
  else
    echo "- unigate: work tree at commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$ROOT" status --porcelain -- unigate 2>/dev/null) ]] && echo ' + uncommitted changes'), started as \`${UNIGATE_EXTRA_ENV:+$UNIGATE_EXTRA_ENV }$UNIGATE_CMD serve --workers 1\`"
  fi
  echo "- unigate Python $(pyver "$UG_PY"): $(pkgvers "$UG_PY" aiohttp starlette uvicorn uvloop httptools orjson pydantic)"
  if [[ -x $LT_PY ]]; then
    echo "- LiteLLM Python $(pyver "$LT_PY"): $(pkgvers "$LT_PY" litellm fastapi starlette uvicorn uvloop httptools httpx aiohttp openai orjson pydantic)${LITELLM_EXTRA_ENV:+; extra env: $LITELLM_EXTRA_ENV}"
  fi
}

report >"$WORK/report.md"
if [[ -n $OUT ]]; then
  mkdir -p "$(dirname "$OUT")"
  cp "$WORK/report.md" "$OUT"
  log "report written to $OUT"
fi
cat "$WORK/report.md"
