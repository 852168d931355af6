-- Reads a namespace's history after a sequence number (Herald, PROTOCOL.md §25).
--
-- KEYS[1] the namespace's stream, KEYS[2] its meta hash
-- ARGV[1] read the events with seq > ARGV[1]
-- ARGV[2] at most this many (0: none, only the position)
-- ARGV[3] the epoch to start when the meta hash is gone
-- ARGV[4] the meta hash's TTL in seconds (0: none)
--
-- Returns {top seq, epoch, oldest seq kept (0 when empty), entries}, each
-- entry as Redis returns it: {id, {"d", message}}; the id is "<seq>-1".
local stream_key, meta_key = KEYS[1], KEYS[2]

local meta = redis.call("hmget", meta_key, "e", "s")
local epoch, top = meta[1], tonumber(meta[2] or "0")
if not epoch then
  epoch = ARGV[3]
  top = 0
  redis.call("hset", meta_key, "e", epoch, "s", 0)
  if ARGV[4] ~= "0" then
    redis.call("expire", meta_key, ARGV[4])
  end
end

local oldest = 0
local first = redis.call("xrange", stream_key, "-", "+", "COUNT", 1)
if #first > 0 then
  oldest = tonumber(string.match(first[1][1], "^(%d+)"))
end

local entries = {}
if ARGV[2] ~= "0" then
  entries = redis.call("xrange", stream_key, "(" .. ARGV[1] .. "-1", "+", "COUNT", ARGV[2])
end
return {top, epoch, oldest, entries}
