"""The Lua scripts the Redis store runs: each is one atomic step in Redis.

Keys (P = the prefix, "mailfilter:" unless the URL says prefix=):
    P meta             hash: bits, fversion, fcrc, generation, spam, good, salt, format
    P w                string: float32[2**bits] weights, little-endian
    P s                string: float32[2**bits] sums of squared gradients
    P users            set: every user who has committed (for stats)
    P ledger:USER      hash: digest (32 raw bytes) -> label letter + pR before
                       ("s-0.52", "g", ...)
    P applied:USER     hash: state directory id -> the last commit number
                       applied from it (a queued learn lands once)
    P lock:USER        string: the writer lock of USER (a random token, with a TTL)

A learn sends DELTAS, not a model: the commit script adds each weight's
and sum's change to what Redis holds at that moment, so two hosts learning
at the same time both land (no read-modify-write across the network), and
a host that saw exactly the current table reproduces its own copy bit for
bit (float32(old + (new - old)) == new; the deltas travel as float64).
"""

# KEYS: meta, w, s ; ARGV: bits, fversion, fcrc, salt
# The first writer ever makes the model: its header and two zero tables.
INIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'bits', ARGV[1], 'fversion', ARGV[2], 'fcrc', ARGV[3],
             'generation', '0', 'spam', '0', 'good', '0', 'salt', ARGV[4], 'format', '1')
  local size = 4 * 2 ^ tonumber(ARGV[1])
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('SETRANGE', KEYS[2], size - 1, '\\0')
  redis.call('SETRANGE', KEYS[3], size - 1, '\\0')
end
return 1
"""

# KEYS: meta, w ; ARGV: ids as little-endian int32
# -> {generation or false, the ids' float32 weights concatenated}
READ = """
local ids = ARGV[1]
local out = {}
for k = 1, #ids / 4 do
  local id = struct.unpack('<i4', ids, 4 * k - 3)
  out[k] = redis.call('GETRANGE', KEYS[2], 4 * id, 4 * id + 3)
end
return {redis.call('HGET', KEYS[1], 'generation'), table.concat(out)}
"""

# KEYS: lock ; ARGV: token, milliseconds
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lock ; ARGV: token
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: meta, w, s, ledger, lock, users, applied
# ARGV:  1 lock token ('' = none needed)   2 host id   3 commit number
#        4 bits  5 fversion  6 fcrc
#        7 ids (<i4)  8 weight deltas (<f8)  9 sum deltas (<f8)
#       10 spam count delta  11 good count delta
#       12 rows: (len byte, digest, len byte, value) ...   13 forget: (len byte, digest) ...
#       14 '1': the rows are the whole ledger (rebuild)
#       15 '1': a queued learn: skip it if the ledger already has every row's label
#       16 user   17 whole weights (reset) or ''   18 whole sums (reset) or ''
# -> {'ok' | 'applied' | 'known', generation}
COMMIT = """
local holder = redis.call('GET', KEYS[5])
if ARGV[1] ~= '' and holder and holder ~= ARGV[1] then
  return redis.error_reply('MAILFILTER another writer took the lock of this user (ours had expired); nothing was saved')
end
local meta = redis.call('HMGET', KEYS[1], 'bits', 'fversion', 'fcrc', 'generation')
if not meta[1] then
  return redis.error_reply('MAILFILTER the shared model is gone (was the Redis database flushed?)')
end
if meta[1] ~= ARGV[4] or meta[2] ~= ARGV[5] or meta[3] ~= ARGV[6] then
  return redis.error_reply('MAILFILTER the shared model has other features or size than this learn')
end
local last = tonumber(redis.call('HGET', KEYS[7], ARGV[2]) or '0')
if tonumber(ARGV[3]) <= last then
  return {'applied', tonumber(meta[4])}
end
local rows = ARGV[12]
local entries = {}
local pos = 1
while pos <= #rows do
  local n = string.byte(rows, pos)
  local digest = string.sub(rows, pos + 1, pos + n)
  pos = pos + n + 1
  n = string.byte(rows, pos)
  entries[#entries + 1] = {digest, string.sub(rows, pos + 1, pos + n)}
  pos = pos + n + 1
end
if ARGV[15] == '1' and #entries > 0 then
  local all_known = true
  for _, e in ipairs(entries) do
    local have = redis.call('HGET', KEYS[4], e[1])
    if not have or string.sub(have, 1, 1) ~= string.sub(e[2], 1, 1) then
      all_known = false
      break
    end
  end
  if all_known then
    redis.call('HSET', KEYS[7], ARGV[2], ARGV[3])
    return {'known', tonumber(meta[4])}
  end
end
if ARGV[17] ~= '' then
  redis.call('SET', KEYS[2], ARGV[17])
  redis.call('SET', KEYS[3], ARGV[18])
  redis.call('HSET', KEYS[1], 'spam', '0', 'good', '0')
end
local ids, dw, ds = ARGV[7], ARGV[8], ARGV[9]
for k = 1, #ids / 4 do
  local offset = 4 * struct.unpack('<i4', ids, 4 * k - 3)
  local delta = struct.unpack('<d', dw, 8 * k - 7)
  if delta ~= 0 then
    local cur = struct.unpack('<f', redis.call('GETRANGE', KEYS[2], offset, offset + 3))
    redis.call('SETRANGE', KEYS[2], offset, struct.pack('<f', cur + delta))
  end
  delta = struct.unpack('<d', ds, 8 * k - 7)
  if delta ~= 0 then
    local cur = struct.unpack('<f', redis.call('GETRANGE', KEYS[3], offset, offset + 3))
    redis.call('SETRANGE', KEYS[3], offset, struct.pack('<f', cur + delta))
  end
end
redis.call('HINCRBY', KEYS[1], 'spam', ARGV[10])
redis.call('HINCRBY', KEYS[1], 'good', ARGV[11])
if ARGV[14] == '1' then
  redis.call('DEL', KEYS[4])
end
for _, e in ipairs(entries) do
  redis.call('HSET', KEYS[4], e[1], e[2])
end
local forget = ARGV[13]
pos = 1
while pos <= #forget do
  local n = string.byte(forget, pos)
  redis.call('HDEL', KEYS[4], string.sub(forget, pos + 1, pos + n))
  pos = pos + n + 1
end
redis.call('HSET', KEYS[7], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[6], ARGV[16])
return {'ok', redis.call('HINCRBY', KEYS[1], 'generation', 1)}
"""
