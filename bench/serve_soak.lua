-- wrk script of bench/serve_soak.sh: cycles through the request bodies listed in <dir>/mix.txt
-- ("file content-type path" per line) and counts every status; done() prints the histogram.
local bodies, types, paths = {}, {}, {}
counts = {}
local i = 0
function init(args)
  local dir = args[1]
  for line in io.lines(dir .. "/mix.txt") do
    local file, ctype, path = line:match("(%S+) (%S+) (%S+)")
    local f = assert(io.open(dir .. "/" .. file, "rb"))
    table.insert(bodies, f:read("*a"))
    f:close()
    table.insert(types, ctype)
    table.insert(paths, path)
  end
  i = math.random(#bodies)
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", paths[i], {["Content-Type"] = types[i]}, bodies[i])
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  io.write(string.format("wrk: %d requests in %.1f s, p50 %.1f ms, p99 %.1f ms, socket errors %d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write("status histogram (wrk mix):\n")
  local keys = {}
  for status in pairs(total) do table.insert(keys, status) end
  table.sort(keys)
  for _, status in ipairs(keys) do io.write(string.format("  %d: %d\n", status, total[status])) end
end
