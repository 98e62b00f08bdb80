-- wrk script for tests/bench/gateways.mjs: POSTs the body in BENCH_BODY_FILE with the headers in
-- BENCH_HEADERS ("name: value" lines) and prints one JSON line of results (latencies in microseconds).
wrk.method = os.getenv("BENCH_METHOD") or "POST"
if wrk.method == "POST" then
  local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["content-type"] = "application/json"
end
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local k, v = line:match("^([^:]+):%s*(.*)$")
  if k then wrk.headers[k] = v end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
