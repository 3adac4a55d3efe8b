#!lua name=tickcast
-- tickcast's Redis Functions: the one place where a tick on a shared
-- stream gets its per-symbol `seq` and its `ts`, atomically, whoever the
-- producer is. Installed by every node with FUNCTION LOAD REPLACE.
--
--   FCALL tickcast_publish 1 <stream> <symbol> [<field> <value> ...]
--     -> the seq assigned
--   FCALL tickcast_publish_batch 1 <stream> <n> then n times:
--         <symbol> <field count> [<field> <value> ...]
--     -> an array of the seqs assigned, in order
--
-- Keys beside the stream (same prefix): <stream>:seq (hash: symbol -> last
-- seq), <stream>:epoch (string), <stream>:config (hash; field `maxlen`,
-- the approximate trim length, default 1000000).
--
-- Any malformed argument refuses the whole call before anything is
-- written. A stream entry holds exactly: symbol, seq, ts, then the given
-- fields with their text unchanged.

local DEFAULT_MAXLEN = 1000000
-- Decimal digits in a price, at most: 38, the precision of SQL DECIMAL and
-- of a 128-bit scaled integer, far beyond any exchange's tick size.
local MAX_PRICE_DIGITS = 38
local U64_MAX = '18446744073709551615'

local PRICE = { bid = true, ask = true, last = true }
local SIZE = { bid_size = true, ask_size = true, volume = true }

-- 1 to 32 bytes of UTF-8 without control characters (C0, DEL, C1).
local function check_symbol(s)
  local n = #s
  if n < 1 or n > 32 then
    return 'symbol must be 1 to 32 bytes, got ' .. n
  end
  local i = 1
  while i <= n do
    local b = string.byte(s, i)
    local len
    if b < 0x20 or b == 0x7f then
      return 'symbol contains a control character'
    elseif b < 0x80 then
      len = 1
    elseif b >= 0xc2 and b <= 0xdf then
      len = 2
    elseif b >= 0xe0 and b <= 0xef then
      len = 3
    elseif b >= 0xf0 and b <= 0xf4 then
      len = 4
    else
      return 'symbol is not UTF-8'
    end
    if i + len - 1 > n then
      return 'symbol is not UTF-8'
    end
    for k = i + 1, i + len - 1 do
      local c = string.byte(s, k)
      if c < 0x80 or c > 0xbf then
        return 'symbol is not UTF-8'
      end
    end
    local b2 = string.byte(s, i + 1)
    if (b == 0xc2 and b2 <= 0x9f)
      or (b == 0xe0 and b2 < 0xa0) or (b == 0xed and b2 > 0x9f)
      or (b == 0xf0 and b2 < 0x90) or (b == 0xf4 and b2 > 0x8f) then
      if b == 0xc2 then
        return 'symbol contains a control character'
      end
      return 'symbol is not UTF-8'
    end
    i = i + len
  end
  return nil
end

-- A JSON number without exponent: -?(0|[1-9][0-9]*)(\.[0-9]+)?
local function check_price(name, v)
  local int, frac = string.match(v, '^%-?(%d+)%.(%d+)$')
  if not int then
    int = string.match(v, '^%-?(%d+)$')
    frac = ''
  end
  if not int then
    return name .. ' is not a decimal number: ' .. v
  end
  if #int > 1 and string.sub(int, 1, 1) == '0' then
    return name .. ' has a leading zero: ' .. v
  end
  if #int + #frac > MAX_PRICE_DIGITS then
    return name .. ' has more than ' .. MAX_PRICE_DIGITS .. ' digits'
  end
  return nil
end

-- A JSON integer from 0 to 2^64-1.
local function check_size(name, v)
  if not string.match(v, '^%d+$') or (#v > 1 and string.sub(v, 1, 1) == '0') then
    return name .. ' is not a non-negative integer: ' .. v
  end
  if #v > #U64_MAX or (#v == #U64_MAX and v > U64_MAX) then
    return name .. ' is larger than 2^64-1'
  end
  return nil
end

-- Checks the fields args[first .. first+count-1] (field, value pairs).
local function check_fields(args, first, count)
  if count % 2 ~= 0 then
    return 'fields come in <field> <value> pairs'
  end
  local seen = {}
  for i = first, first + count - 1, 2 do
    local f, v = args[i], args[i + 1]
    local err
    if PRICE[f] then
      err = check_price(f, v)
    elseif SIZE[f] then
      err = check_size(f, v)
    else
      err = 'unknown field: ' .. tostring(f)
    end
    if err then
      return err
    end
    if seen[f] then
      return 'duplicate field: ' .. f
    end
    seen[f] = true
  end
  return nil
end

-- Integer nanoseconds since 1970 as decimal text: ~1.8e18 is beyond the
-- 2^53 a Lua number holds exactly, so it is built as a string.
local function now_nanos()
  local t = redis.call('TIME')
  local micros = t[2]
  return t[1] .. string.rep('0', 6 - #micros) .. micros .. '000', t
end

-- A stream that does not exist (first call, deleted, or Redis lost its
-- data) starts a new history: the seqs restart and the epoch is new.
local function begin(stream)
  local epoch_key = stream .. ':epoch'
  if redis.call('EXISTS', stream) == 0 or redis.call('EXISTS', epoch_key) == 0 then
    local t = redis.call('TIME')
    redis.call('DEL', stream .. ':seq')
    redis.call('SET', epoch_key,
      string.format('e-%x%05x', tonumber(t[1]), tonumber(t[2])))
  end
  local maxlen = redis.call('HGET', stream .. ':config', 'maxlen')
  if not maxlen or not string.match(maxlen, '^[1-9]%d*$') then
    maxlen = DEFAULT_MAXLEN
  end
  return maxlen
end

local function add(stream, maxlen, ts, symbol, args, first, count)
  local seq = redis.call('HINCRBY', stream .. ':seq', symbol, 1)
  local entry = { 'XADD', stream, 'MAXLEN', '~', maxlen, '*',
    'symbol', symbol, 'seq', string.format('%d', seq), 'ts', ts }
  for i = first, first + count - 1 do
    entry[#entry + 1] = args[i]
  end
  redis.call(unpack(entry))
  return seq
end

local function publish(keys, args)
  if #keys ~= 1 then
    return redis.error_reply('tickcast_publish takes 1 key, the stream')
  end
  local symbol = args[1]
  if not symbol then
    return redis.error_reply('tickcast_publish needs a symbol')
  end
  local err = check_symbol(symbol) or check_fields(args, 2, #args - 1)
  if err then
    return redis.error_reply(err)
  end
  local maxlen = begin(keys[1])
  return add(keys[1], maxlen, now_nanos(), symbol, args, 2, #args - 1)
end

local function publish_batch(keys, args)
  if #keys ~= 1 then
    return redis.error_reply('tickcast_publish_batch takes 1 key, the stream')
  end
  local n = tonumber(args[1])
  if not n or n < 1 or n ~= math.floor(n) then
    return redis.error_reply('tickcast_publish_batch needs a tick count >= 1')
  end
  -- Check every tick before writing any.
  local ticks = {}
  local i = 2
  for k = 1, n do
    local symbol, count = args[i], tonumber(args[i + 1])
    if not symbol or not count or count < 0 or count ~= math.floor(count) then
      return redis.error_reply('tick ' .. k .. ': needs <symbol> <field count>')
    end
    if i + 1 + count > #args then
      return redis.error_reply('tick ' .. k .. ': fewer arguments than its field count')
    end
    local err = check_symbol(symbol) or check_fields(args, i + 2, count)
    if err then
      return redis.error_reply('tick ' .. k .. ': ' .. err)
    end
    ticks[k] = { symbol, i + 2, count }
    i = i + 2 + count
  end
  if i ~= #args + 1 then
    return redis.error_reply('more arguments than the ticks announced')
  end
  local maxlen = begin(keys[1])
  local ts = now_nanos()
  local seqs = {}
  for k = 1, n do
    local t = ticks[k]
    seqs[k] = add(keys[1], maxlen, ts, t[1], args, t[2], t[3])
  end
  return seqs
end

redis.register_function('tickcast_publish', publish)
redis.register_function('tickcast_publish_batch', publish_batch)
