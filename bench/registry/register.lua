-- wrk script: POST registrations of new instances (a unique endpoint per request).
local counter, tid = 0, 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"service_name":"svc%d","endpoint":{"type":"http","value":"10.%d.%d.%d:%d"},"tags":["version=v1"],"ttl":600}',
    counter % 100, tid, math.floor(counter / 65536) % 256, math.floor(counter / 256) % 256, counter % 256, 9000 + tid)
  return wrk.format("POST", "/api/v1/instances", {["Content-Type"] = "application/json"}, body)
end
init = function() tid = tonumber(wrk.thread:get("tid")) or 0 end
response = function(status)
  if status ~= 201 then error("register answered " .. status) end
end
