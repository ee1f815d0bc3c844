-- One wrk script for every phase; BENCH_PHASE selects the request shape.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local phase = os.getenv("BENCH_PHASE")
local base = os.getenv("BENCH_BASE_PATH")
local headers = common.headers(os.getenv("BENCH_TOKEN"))
local ids, names, groups, pool
local counter = 0
tag = tag or ""
local page_max = tonumber(os.getenv("BENCH_PAGES") or "1")

local thread_seq = 0
function setup(thread)
  thread_seq = thread_seq + 1
  thread:set("tag", os.getenv("BENCH_RUN") .. "-" .. thread_seq)
end

function init(args)
  local dir = os.getenv("BENCH_FIXTURES")
  ids = common.lines(dir .. "/ids.txt")
  names = common.lines(dir .. "/names.txt")
  groups = common.lines(dir .. "/groups.txt")
  math.randomseed(os.time() + #tag * 7919)
end

local function pick(list) return list[math.random(#list)] end

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

request = function()
  if phase == "create" then
    counter = counter + 1
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"new-'
      .. tag .. "-" .. counter .. '","name":{"givenName":"New","familyName":"User"},'
      .. '"emails":[{"value":"new-' .. tag .. "-" .. counter .. '@bench.test","type":"work"}],'
      .. '"active":true}'
    return wrk.format("POST", base .. "/Users", headers, body)
  elseif phase == "get" then
    return wrk.format("GET", base .. "/Users/" .. pick(ids), headers)
  elseif phase == "filter" then
    local f = 'userName eq "' .. pick(names) .. '"'
    return wrk.format("GET", base .. "/Users?filter=" .. urlencode(f), headers)
  elseif phase == "patch" then
    counter = counter + 1
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
      .. '"Operations":[{"op":"replace","path":"title","value":"Title ' .. counter .. '"}]}'
    return wrk.format("PATCH", base .. "/Users/" .. pick(ids), headers, body)
  elseif phase == "members" then
    local values = {}
    for i = 1, 50 do values[i] = '{"value":"' .. pick(ids) .. '"}' end
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
      .. '"Operations":[{"op":"add","path":"members","value":[' .. table.concat(values, ",")
      .. ']}]}'
    return wrk.format("PATCH", base .. "/Groups/" .. pick(groups)
      .. "?excludedAttributes=members", headers, body)
  elseif phase == "deactivate" then
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
      .. '"Operations":[{"op":"replace","path":"active","value":false}]}'
    return wrk.format("PATCH", base .. "/Users/" .. pick(ids), headers, body)
  elseif phase == "list" then
    local start = (math.random(page_max) - 1) * 100 + 1
    return wrk.format("GET", base .. "/Users?startIndex=" .. start .. "&count=100", headers)
  end
  error("unknown phase " .. tostring(phase))
end

local errors = 0
response = function(status, headers, body)
  if status >= 300 then
    errors = errors + 1
    if errors <= 3 then io.stderr:write("status " .. status .. ": " .. body:sub(1, 200) .. "\n") end
  end
end

done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors_status=%d errors_io=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
