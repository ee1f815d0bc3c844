-- Shared by every phase: read the fixture lines the driver wrote, pick at random.
local M = {}

function M.lines(path)
  local out = {}
  local f = assert(io.open(path, "r"))
  for line in f:lines() do out[#out + 1] = line end
  f:close()
  return out
end

function M.headers(token)
  return {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/scim+json",
  }
end

return M
