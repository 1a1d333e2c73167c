-- wrk script: PUT heartbeats round-robin over the instance ids in $IDS_FILE.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("PUT", "/api/v1/instances/" .. ids[(i % #ids) + 1] .. "/heartbeat")
end
response = function(status)
  if status ~= 200 then error("heartbeat answered " .. status) end
end
