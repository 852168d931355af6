-- Appends one event to a namespace's history and publishes it, atomically,
-- so every node sees one order per namespace (Herald, PROTOCOL.md §25).
--
-- KEYS[1] the namespace's stream      {prefix}:hist:{ns}
-- KEYS[2] its meta hash (e = epoch, s = last seq)  {prefix}:hist:{ns}:meta
-- KEYS[3] the publisher's message-id key, or "" for none  {prefix}:mid:{ns}:{mid}
-- ARGV[1] the cross-node message (opaque bytes)
-- ARGV[2] the stream's MAXLEN (events kept)
-- ARGV[3] the stream's TTL in seconds (0: none)
-- ARGV[4] the channel to publish on, or "" to publish nothing
-- ARGV[5] the meta hash's TTL in seconds (0: none)
-- ARGV[6] the epoch to start when the meta hash is gone
-- ARGV[7] how long a message id is remembered, in seconds
--
-- Returns {seq, epoch, duplicate (0/1)}. The published message is
-- "h" .. seq .. ":" .. epoch .. ":" .. ARGV[1].
local stream_key, meta_key, mid_key = KEYS[1], KEYS[2], KEYS[3]

if mid_key ~= "" then
  local seen = redis.call("hmget", mid_key, "e", "s")
  if seen[1] then
    return {tonumber(seen[2]), seen[1], 1}
  end
end

local epoch = redis.call("hget", meta_key, "e")
if not epoch then
  epoch = ARGV[6]
  redis.call("hset", meta_key, "e", epoch)
end
local seq = redis.call("hincrby", meta_key, "s", 1)
if ARGV[5] ~= "0" then
  redis.call("expire", meta_key, ARGV[5])
end

redis.call("xadd", stream_key, "MAXLEN", ARGV[2], seq .. "-1", "d", ARGV[1])
if ARGV[3] ~= "0" then
  redis.call("expire", stream_key, ARGV[3])
end

if ARGV[4] ~= "" then
  redis.call("publish", ARGV[4], "h" .. seq .. ":" .. epoch .. ":" .. ARGV[1])
end

if mid_key ~= "" then
  redis.call("hset", mid_key, "e", epoch, "s", seq)
  redis.call("expire", mid_key, ARGV[7])
end

return {seq, epoch, 0}
