-- wrk script of benchmarks/loadgen.py: POST the bodies of $WRK_BODIES (one JSON body per line) in turn, and
-- print the figures of the run as one JSON line when it ends.
local bodies = {}
local next_body = 0

function init(args)
  local file = assert(io.open(os.getenv("WRK_BODIES"), "r"))
  for line in file:lines() do
    bodies[#bodies + 1] = line
  end
  file:close()
  assert(#bodies > 0, "no request bodies in " .. os.getenv("WRK_BODIES"))
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, {["content-type"] = "application/json"}, bodies[next_body])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d,'
      .. ' "p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
