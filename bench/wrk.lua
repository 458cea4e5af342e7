-- Replays pre-built requests from a file, each once, in order (signed requests carry
-- one-time nonces, so a request must never be sent twice). Line format:
-- METHOD \t PATH \t name:value \31 name:value ... \t BODY
local requests = {}
local index = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    local method, path, header_text, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {}
    for pair in header_text:gmatch("[^\31]+") do
      local name, value = pair:match("^([^:]+):(.*)$")
      headers[name] = value
    end
    if body == "" then body = nil end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
  file:close()
end

function request()
  index = index + 1
  if index > #requests then
    -- Out of prepared requests: repeat the last one; the run counts these as errors.
    index = #requests
  end
  return requests[index]
end
