-- wrk script for the unigate benchmark: POST /v1/chat/completions.
--
--   wrk -t1 -c32 -d10s --latency -s bench/chat.lua http://127.0.0.1:PORT -- [stream|nonstream]
--
-- Settings (wrk args after `--` win over the environment):
--   BENCH_STREAM=1          streaming request ("stream": true); default non-streaming
--   BENCH_INCLUDE_USAGE=0   omit stream_options.include_usage (default: ask for usage)
--   BENCH_MODEL=gpt-4o      model name sent
--   BENCH_KEY=sk-bench-client   client key sent as `Authorization: Bearer`
--   BENCH_PATH=/v1/chat/completions
--
-- At the end it prints one machine-readable line that bench/run.sh parses:
--   BENCH_RESULT requests=N duration_s=X rps=X p50_ms=X p90_ms=X p99_ms=X max_ms=X
--                errors_connect=N errors_read=N errors_write=N errors_status=N errors_timeout=N
-- (errors_status counts non-2xx/3xx responses.)

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local stream = env("BENCH_STREAM", "0") == "1"
local include_usage = env("BENCH_INCLUDE_USAGE", "1") == "1"
local model = env("BENCH_MODEL", "gpt-4o")
local key = env("BENCH_KEY", "sk-bench-client")
local path = env("BENCH_PATH", "/v1/chat/completions")

local function build_body()
  local body = '{"model":"' .. model .. '","messages":['
    .. '{"role":"system","content":"You are a helpful assistant."},'
    .. '{"role":"user","content":"Say hello in one short sentence."}]'
    .. ',"temperature":0.2,"max_tokens":64'
  if stream then
    body = body .. ',"stream":true'
    if include_usage then
      body = body .. ',"stream_options":{"include_usage":true}'
    end
  end
  return body .. "}"
end

local request_bytes

function init(args)
  for _, a in ipairs(args) do
    if a == "stream" then stream = true
    elseif a == "nonstream" then stream = false
    elseif a == "nousage" then include_usage = false
    end
  end
  wrk.method = "POST"
  wrk.path = path
  wrk.body = build_body()
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
  -- Build the request once; wrk reuses it for every call.
  request_bytes = wrk.format()
end

function request()
  return request_bytes
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
      .. "errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
