--[[
  stock-ledger: the library every script of the Redis store opens with.

  The ledger's keys (redis-keys.ts), each stock-ledger:{<prefix>}: and the name shown; all carry
  the ledger's hash tag, so they share one slot. A call names only the first, levels: bind
  derives the others from it (a caller may name the rest, in this order, as earlier versions did):
    1 levels        hash   sku -> "onHand,reserved,version" (the default policy), or
                           "onHand,reserved,version,backorderMax,lowStockAt" (lowStockAt "" for
                           none) when the policy is not the default and has no buyerMax, or
                           "onHand,reserved,version,backorderMax,lowStockAt,buyerMax" when it has
                           one; so levels written before policies (or before buyerMax) existed
                           read as they were meant, and a store of an earlier version refuses a
                           level with a buyerMax (a malformed level to it) instead of ignoring
                           the limit
    2 seq           string last entry seq
    3 entries       hash   seq -> entry JSON
    4 bySku         no value of its own since layout 2: its name, a colon and a SKU name that
                    SKU's entry index, a zset of the SKU's entry seqs (score and member both the
                    seq, see sku_index). Layout 1 kept one zset here, (score 0) enc(sku) ..
                    pad16(seq); layout.lua moves it into the per-SKU sets.
    5 skus          zset   (score 0) every SKU with a level, in byte order (the verify walk)
    6 requests      hash   requestId -> kind "\n" at "\n" fingerprint "\n" outcome JSON
                           (kind "revoke": a tombstone, whose outcome has no entry and no level),
                           or, for a deduct without anyOf lines (layout 3), "~" and its first
                           seq and level fields instead of the outcome (taken_tail)
    7 reversed      hash   enc(of) .. sku -> units given back by reversals of request `of`
    8 reservations  hash   id -> reservation record JSON (meta and outcome as JSON strings)
    9 holdsBySku    zset   (score 0) enc(sku) .. pad16(expiresAt) .. enc(id) .. qty
   10 holdsDue      zset   (score expiresAt) enc(id) .. sku: every hold, soonest first
   11 buyers        hash   enc(sku) .. buyer -> what the buyer holds plus has bought of the SKU
                           (only totals that are not 0; a missing field reads as 0)
   12 buyersBySku   zset   (score 0) enc(sku) .. buyer: the fields of `buyers`, so a SKU's
                           buyers are one range (the verify walk reads them with its level)

  Then four keys of retention (compaction), which came later: compaction writes them, so a
  ledger of the earlier layout lacks them and works as it is. Only the compaction and read
  scripts use them.
   13 checkpoints   hash   enc(sku) .. "c" -> "onHand,reserved,version": what the SKU's removed
                           entries folded to; enc(sku) .. "h" .. reservationId -> the summed
                           reservedDelta of its removed entries holding for that reservation;
                           enc(sku) .. "b" .. buyer -> their summed reservedDelta - onHandDelta
                           naming that buyer (both only when not 0). enc() ends the SKU, and one
                           tag byte follows, so no SKU, id or buyer can make two fields the same.
   14 cpBySku       zset   (score 0) the fields of `checkpoints`, so a SKU's checkpoint is one range
   15 horizon       string the highest seq compaction removed ("0" or missing: none); the entries
                           from horizon + 1 to seq are all there
   16 closedScan    string "cursor,start": compaction's pass over `requests` for closed ids (which
                           have no entry to walk): the HSCAN cursor ("0": no pass under way) and
                           the `now` the last pass started at (see compact.lua)

  And one key of the layout ("3", see layout.lua), which only the layout script reads and writes:
   17 layout        string the layout version the ledger's keys are written in

  One more key of the ledger is no script's: with waitForAof the store INCRs
  stock-ledger:{<prefix>}:aof after every script call, on the same connection (redis-keys.ts).

  Every field or member built from two caller strings (a SKU and a reservation or request id,
  a SKU and a buyer) puts enc() around all of them but the last, so no two pairs can make the
  same bytes.
  enc(s) escapes NUL as NUL 0xFF and ends the string with NUL: the bytes sort as the strings
  do, and a SKU can never run into the field after it (UTF-8 never holds 0xFF).

  Numbers are written with %d: Lua's tostring (and cjson) would round past 14 digits.
  Every operation decides first, reading only, into a draft; `persist` then writes all of it.
  Lua has no rollback, so nothing is written before every check has passed. Every write goes
  through `write`, which counts it: a batch tells an operation that failed before its first
  write (it changed nothing) from one that failed after (half-applied), and stops at the latter.

  Composed by scripts/embed-lua.mjs in two forms from the same files:
  - a script per operation (EVALSHA): lib.lua, the files that script needs (each file's header
    names them), then `bind(KEYS)` and `return OPS.<op>(ARGV)`;
  - one function library (FUNCTION LOAD, then FCALL): lib.lua, every file once, then one
    registered function per script, each calling `bind(keys)` and then its OPS entry. The
    library's body runs once, when it is loaded, not on every call.
]]
local K_LEVELS, K_SEQ, K_ENTRIES, K_BY_SKU, K_SKUS
local K_REQUESTS, K_REVERSED, K_RESERVATIONS, K_HOLDS_BY_SKU, K_HOLDS_DUE
local K_BUYERS, K_BUYERS_BY_SKU
local K_CHECKPOINTS, K_CP_BY_SKU, K_HORIZON, K_CLOSED_SCAN, K_LAYOUT
local QUANTITY_MAX = __QUANTITY_MAX__
local EXPIRIES_PER_SKU_MAX = __EXPIRIES_PER_SKU_MAX__

local OPS = {}

-- Successful writes of this script run so far (see the header).
local WRITES = { n = 0 }

-- Starts a call: the ledger's keys, and no write yet. A call names one key, the ledger's levels
-- (stock-ledger:{<prefix>}:levels); every other key is the same tag and a fixed name (the list
-- above, redis-keys.ts), so bind derives them, in the slot of the key named (the hash tag is the
-- same), and a call carries one key instead of seventeen. A caller that names them all (an
-- older one) gets the same keys. The names are kept between calls of a loaded library while the
-- ledger is the same (they are a function of its levels key); the write count is reset.
local function bind(keys)
  local levels = keys[1]
  if levels ~= K_LEVELS then
    local tag = string.sub(levels, 1, -7)
    if tag .. 'levels' ~= levels then error({ err = 'STOCK_LEDGER_INVARIANT the first key is not a ledger\'s levels key' }) end
    K_LEVELS, K_SEQ, K_ENTRIES, K_BY_SKU, K_SKUS = levels, tag .. 'seq', tag .. 'entries', tag .. 'by-sku', tag .. 'skus'
    K_REQUESTS, K_REVERSED, K_RESERVATIONS = tag .. 'requests', tag .. 'reversed', tag .. 'reservations'
    K_HOLDS_BY_SKU, K_HOLDS_DUE, K_BUYERS, K_BUYERS_BY_SKU = tag .. 'holds-by-sku', tag .. 'holds-due', tag .. 'buyers', tag .. 'buyers-by-sku'
    K_CHECKPOINTS, K_CP_BY_SKU, K_HORIZON = tag .. 'checkpoints', tag .. 'checkpoints-by-sku', tag .. 'horizon'
    K_CLOSED_SCAN, K_LAYOUT = tag .. 'closed-scan', tag .. 'layout'
  end
  WRITES.n = 0
end
local function write(...)
  local reply = redis.call(...)
  WRITES.n = WRITES.n + 1
  return reply
end

local function fmt(n) return string.format('%d', n) end
local function pad16(n) return string.format('%016d', n) end
-- A string as JSON, as cjson writes it. Most ids and SKUs hold nothing cjson escapes (control
-- characters and DEL, '"', '\\', '/') and no byte past ASCII: those are quoted as they are, without
-- a call into cjson; anything else goes through cjson, so the bytes are the same either way.
local function q(s)
  if type(s) == 'string' and not string.find(s, '[%c"\\/\128-\255]') then return '"' .. s .. '"' end
  return cjson.encode(s)
end
local function enc(s)
  -- Most strings hold no NUL: a plain find is far cheaper than the pattern substitution.
  if not string.find(s, '\0', 1, true) then return s .. '\0' end
  return (string.gsub(s, '%z', '\0\255')) .. '\0'
end

-- The string enc() wrote at position i, and the position after its terminator.
local function dec(s, i)
  local parts = {}
  for _ = 1, #s do
    local z = string.find(s, '\0', i, true)
    if string.byte(s, z + 1) == 255 then
      parts[#parts + 1] = string.sub(s, i, z)
      i = z + 2
    else
      parts[#parts + 1] = string.sub(s, i, z - 1)
      return table.concat(parts), z + 1
    end
  end
  error({ err = 'STOCK_LEDGER_INVARIANT unterminated field' })
end

-- A SKU's entry index (layout 2): its entry seqs, score and member both the seq, so adding the
-- newest is cheap (a small set, or the end of a large one) and a range of seqs is one ZRANGEBYSCORE.
-- The SKU follows the bySku key's name and a colon: the key keeps the ledger's hash tag (its
-- first braces), and no two SKUs share a key, whatever bytes they hold.
local function sku_index(sku) return K_BY_SKU .. ':' .. sku end

-- `seq`: the entry's seq as text.
local function index_entry(sku, seq)
  return write('ZADD', sku_index(sku), seq, seq)
end

local function invariant(message) error({ err = 'STOCK_LEDGER_INVARIANT ' .. message }) end

-- "" stands for none (meta, expectedVersion); -1 for lines not given.
local function opt(s) if s == '' then return nil end return s end

-- n lines from a[i]: { { sku = , qty = }, ... }
local function read_lines(a, i)
  local n = tonumber(a[i])
  if n < 0 then return nil end
  local lines = {}
  for j = 1, n do lines[j] = { sku = a[i + 2 * j - 1], qty = tonumber(a[i + 2 * j]) } end
  return lines
end

local function skus_of(lines)
  local skus = {}
  for i, l in ipairs(lines) do skus[i] = l.sku end
  return skus
end

local function lines_json(lines)
  local out = {}
  for i, l in ipairs(lines) do out[i] = '{"sku":' .. q(l.sku) .. ',"qty":' .. fmt(l.qty) .. '}' end
  return '[' .. table.concat(out, ',') .. ']'
end

-- Counters: { on, res, ver, bo = backorderMax, ls = lowStockAt or nil (none), bm = buyerMax or
-- nil (no limit) }. (0 is true in Lua: `c.bm ~= nil` and `c.bm and` both test for a limit.)

-- What a deduct or reserve may take (the core's availableOf).
local function available(c) return c.on - c.res + c.bo end

local function is_default_policy(c) return c.bo == 0 and c.ls == nil and c.bm == nil end

local function policy_json(c)
  return '{"backorderMax":' .. fmt(c.bo) .. ',"lowStockAt":' .. (c.ls and fmt(c.ls) or 'null') .. ',"buyerMax":' ..
    (c.bm and fmt(c.bm) or 'null') .. '}'
end

-- A level shows its policy only when it is not the default (the core's levelOf).
local function level_json(sku, c)
  return '{"sku":' .. q(sku) .. ',"onHand":' .. fmt(c.on) .. ',"reserved":' .. fmt(c.res) .. ',"available":' ..
    fmt(available(c)) .. ',"version":' .. fmt(c.ver) .. (is_default_policy(c) and '' or (',"policy":' .. policy_json(c))) .. '}'
end

-- ",backorderMax,lowStockAt" (lowStockAt "" for none), then ",buyerMax" when there is one, or ""
-- for the default policy.
local function policy_field(c)
  if is_default_policy(c) then return '' end
  return ',' .. fmt(c.bo) .. ',' .. (c.ls and fmt(c.ls) or '') .. (c.bm and (',' .. fmt(c.bm)) or '')
end

-- The stored level field (see the header): the short form for the default policy, so a level
-- without a policy stays readable by a store of an earlier version.
local function level_field(c)
  return fmt(c.on) .. ',' .. fmt(c.res) .. ',' .. fmt(c.ver) .. policy_field(c)
end

-- Counters from a stored level field, any of its three forms; a field of any other shape is
-- foreign data.
local function counters_of(sku, v)
  local on, res, ver = string.match(v, '^(%-?%d+),(%-?%d+),(%d+)$')
  if on then return { on = tonumber(on), res = tonumber(res), ver = tonumber(ver), bo = 0, ls = nil, bm = nil } end
  local bo, ls, bm
  on, res, ver, bo, ls = string.match(v, '^(%-?%d+),(%-?%d+),(%d+),(%d+),(%d*)$')
  if not on then
    on, res, ver, bo, ls, bm = string.match(v, '^(%-?%d+),(%-?%d+),(%d+),(%d+),(%d*),(%d+)$')
    if not on then invariant('SKU ' .. q(sku) .. ' has a malformed level ' .. q(v)) end
  end
  return { on = tonumber(on), res = tonumber(res), ver = tonumber(ver), bo = tonumber(bo), ls = tonumber(ls), bm = tonumber(bm) }
end

local function read_counters(sku)
  local v = redis.call('HGET', K_LEVELS, sku)
  if not v then return nil end
  return counters_of(sku, v)
end

local function zero_counters() return { on = 0, res = 0, ver = 0, bo = 0, ls = nil, bm = nil } end

--------------------------------------------------------------------------------------------
-- The draft: what an operation has decided so far.

local function new_draft(at)
  return {
    at = at, cache = {}, fresh = {}, changed = {}, changed_list = {}, steps = {}, own_from = 1,
    ended = {}, ended_list = {}, expired = {}, expired_list = {}, res_cache = {},
    -- Buyer totals read or decided here: enc(sku) .. buyer -> taken; the changed ones in order.
    buyers = {}, buyers_changed = {}, buyers_list = {},
    levels = {}, request = nil, reversal = nil, reservation = nil, settled = nil, extended = nil, sweep = nil,
    -- A deduct, reserve or amend with an anyOf line: its allocations, as JSON (the outcome and its replays show them).
    allocations = nil,
    -- An amend: { id =, lines = (the new ones) }; its holds and record are rewritten (update_reservations).
    amended = nil,
  }
end

local function counters(d, sku)
  local c = d.cache[sku]
  if c then return c end
  c = read_counters(sku)
  if not c then
    c = zero_counters()
    d.fresh[sku] = true
  end
  d.cache[sku] = c
  return c
end

-- A stored reservation, decoded, or false; read once per script into `cache` (by id).
local function cached_reservation(cache, id)
  local r = cache[id]
  if r ~= nil then return r end
  local raw = redis.call('HGET', K_RESERVATIONS, id)
  r = raw and cjson.decode(raw) or false
  cache[id] = r
  return r
end

-- The stored reservation (as read before this operation), or false.
local function reservation(d, id)
  return cached_reservation(d.res_cache, id)
end

local function held_qty(r, sku)
  for _, l in ipairs(r.lines) do if l.sku == sku then return l.qty end end
  return 0
end

local function holds_sku(r, sku)
  for _, s in ipairs(r.holds) do if s == sku then return true end end
  return false
end

-- The field of a (SKU, buyer) pair in `buyers` (and its member in `buyersBySku`).
local function buyer_field(sku, buyer) return enc(sku) .. buyer end

-- What a buyer holds plus has bought of a SKU: as stored, or as this operation decided so far.
local function buyer_taken(d, sku, buyer)
  local field = buyer_field(sku, buyer)
  local taken = d.buyers[field]
  if taken then return taken end
  taken = tonumber(redis.call('HGET', K_BUYERS, field) or '0')
  d.buyers[field] = taken
  return taken
end

local function move_buyer(d, sku, buyer, delta)
  local taken = buyer_taken(d, sku, buyer) + delta
  if taken < 0 then invariant('buyer ' .. q(buyer) .. ' would hold ' .. fmt(taken) .. ' of SKU ' .. q(sku)) end
  local field = buyer_field(sku, buyer)
  d.buyers[field] = taken
  if not d.buyers_changed[field] then
    d.buyers_changed[field] = true
    d.buyers_list[#d.buyers_list + 1] = field
  end
end

-- A SKU's counters after a change must stay within the model: a bug otherwise.
local function check_after(sku, after)
  if after.res < 0 or available(after) < 0 or after.on > QUANTITY_MAX then
    invariant('SKU ' .. q(sku) .. ' would reach onHand ' .. fmt(after.on) .. ', reserved ' .. fmt(after.res) .. ', available ' ..
      fmt(available(after)))
  end
end

-- deltas: { { sku, onHandDelta, reservedDelta, policy = { bo =, ls =, bm = } or nil }, ... }: the
-- policy is carried unchanged unless the delta names a new one (a policy step). A step with a
-- buyer moves that buyer's total of each SKU by reservedDelta - onHandDelta (the core's step).
-- An amend's step names the reservation whose holds it moves (its entries carry reservationId).
local function step(d, request_id, kind, meta, deltas, buyer, reservation_id)
  local changes = {}
  for i, delta in ipairs(deltas) do
    local sku = delta[1]
    local before = counters(d, sku)
    local policy = delta.policy or before
    local after = { on = before.on + delta[2], res = before.res + delta[3], ver = before.ver + 1, bo = policy.bo, ls = policy.ls,
      bm = policy.bm }
    check_after(sku, after)
    d.cache[sku] = after
    if not d.changed[sku] then
      d.changed[sku] = true
      d.changed_list[#d.changed_list + 1] = sku
    end
    changes[i] = { sku = sku, on_delta = delta[2], res_delta = delta[3], after = after }
    if buyer then move_buyer(d, sku, buyer, delta[3] - delta[2]) end
  end
  d.steps[#d.steps + 1] = { request_id = request_id, kind = kind, meta = meta, buyer = buyer, reservation_id = reservation_id,
    changes = changes }
end

local function own(d) d.own_from = #d.steps + 1 end

-- Ends a hold (expiry, commit or release); false when it had already ended here.
local function end_hold(d, id, sku)
  local key = enc(id) .. sku
  if d.ended[key] then return false end
  d.ended[key] = true
  d.ended_list[#d.ended_list + 1] = { id = id, sku = sku }
  return true
end

local function expire_hold(d, r, sku)
  if not holds_sku(r, sku) or not end_hold(d, r.id, sku) then return end
  step(d, r.id, 'expire', r.meta, { { sku, 0, -held_qty(r, sku) } }, r.buyer)
  if not d.expired[r.id] then
    d.expired[r.id] = true
    d.expired_list[#d.expired_list + 1] = r.id
  end
end

-- Reservations holding `sku` with expiresAt <= now, soonest first (then by id), at most limit.
local function due_holds(sku, now, limit)
  local prefix = enc(sku)
  local members = redis.call('ZRANGEBYLEX', K_HOLDS_BY_SKU, '[' .. prefix, '(' .. prefix .. pad16(now + 1), 'LIMIT', 0, limit)
  local ids = {}
  for i, m in ipairs(members) do ids[i] = dec(m, #prefix + 17) end
  return ids
end

-- Expires the due holds of these SKUs, a bounded number per SKU.
local function expire_due(d, skus)
  for _, sku in ipairs(skus) do
    if counters(d, sku).res > 0 then
      for _, id in ipairs(due_holds(sku, d.at, EXPIRIES_PER_SKU_MAX)) do
        local r = reservation(d, id)
        if r then expire_hold(d, r, sku) end
      end
    end
  end
end

--------------------------------------------------------------------------------------------
-- Writing a draft.

-- `seq` and `at` as text (each formatted once per entry or operation).
local function entry_json(seq, s, c, at)
  return '{"seq":' .. seq .. ',"requestId":' .. q(s.request_id) .. ',"kind":"' .. s.kind .. '","sku":' .. q(c.sku) ..
    ',"onHandDelta":' .. fmt(c.on_delta) .. ',"reservedDelta":' .. fmt(c.res_delta) .. ',"onHandAfter":' .. fmt(c.after.on) ..
    ',"reservedAfter":' .. fmt(c.after.res) .. ',"at":' .. at .. (s.meta and (',"meta":' .. s.meta) or '') ..
    -- Only policy entries carry the policy, the whole of it (defaults included).
    (s.kind == 'policy' and (',"policy":' .. policy_json(c.after)) or '') .. (s.buyer and (',"buyer":' .. q(s.buyer)) or '') ..
    -- Only amend entries name a reservation: their requestId is the amend's own.
    (s.reservation_id and (',"reservationId":' .. q(s.reservation_id)) or '') .. '}'
end

-- Appends every entry; returns all of them and the operation's own, as JSON, and the seq of its
-- first own entry.
local function write_entries(d)
  local n = 0
  for _, s in ipairs(d.steps) do n = n + #s.changes end
  local all, own_entries = {}, {}
  if n == 0 then return all, own_entries, nil end
  local seq = write('INCRBY', K_SEQ, fmt(n)) - n + 1
  local own_seq
  local at = fmt(d.at)
  for i, s in ipairs(d.steps) do
    for _, c in ipairs(s.changes) do
      local seq_text = fmt(seq)
      local e = entry_json(seq_text, s, c, at)
      write('HSET', K_ENTRIES, seq_text, e)
      index_entry(c.sku, seq_text)
      all[#all + 1] = e
      if i >= d.own_from then
        own_entries[#own_entries + 1] = e
        own_seq = own_seq or seq
      end
      seq = seq + 1
    end
  end
  return all, own_entries, own_seq
end

local function write_levels(d)
  for _, sku in ipairs(d.changed_list) do
    local c = d.cache[sku]
    write('HSET', K_LEVELS, sku, level_field(c))
    if d.fresh[sku] then write('ZADD', K_SKUS, 0, sku) end
  end
end

-- A number in a hash whose fields a sorted set indexes: at 0 the field goes from both (a
-- missing field reads 0).
local function set_indexed(hash, index, field, value)
  if value == 0 then
    write('HDEL', hash, field)
    write('ZREM', index, field)
  else
    write('HSET', hash, field, fmt(value))
    write('ZADD', index, 0, field)
  end
end

-- Buyer totals as they stand after the draft.
local function write_buyers(d)
  for _, field in ipairs(d.buyers_list) do set_indexed(K_BUYERS, K_BUYERS_BY_SKU, field, d.buyers[field]) end
end

local function hold_member(r, sku)
  return enc(sku) .. pad16(r.expiresAt) .. enc(r.id) .. fmt(held_qty(r, sku))
end

local function record_json(r)
  local holds = {}
  for i, s in ipairs(r.holds) do holds[i] = q(s) end
  return '{"id":' .. q(r.id) .. ',"state":"' .. r.state .. '","lines":' .. lines_json(r.lines) .. ',"expiresAt":' ..
    fmt(r.expiresAt) .. ',"createdAt":' .. fmt(r.createdAt) .. (r.committed and (',"committed":' .. lines_json(r.committed)) or '') ..
    (r.meta and (',"meta":' .. q(r.meta)) or '') .. (r.buyer and (',"buyer":' .. q(r.buyer)) or '') .. ',"holds":[' ..
    table.concat(holds, ',') .. ']' .. (r.outcome and (',"outcome":' .. q(r.outcome)) or '') .. '}'
end

local function public_reservation_json(r)
  return '{"id":' .. q(r.id) .. ',"state":"held","lines":' .. lines_json(r.lines) .. ',"expiresAt":' .. fmt(r.expiresAt) ..
    ',"createdAt":' .. fmt(r.createdAt) .. ',"committed":null' .. (r.meta and (',"meta":' .. r.meta) or '') ..
    (r.buyer and (',"buyer":' .. q(r.buyer)) or '') .. '}'
end

local function insert_reservation(r)
  write('HSET', K_RESERVATIONS, r.id, record_json(r))
  for _, l in ipairs(r.lines) do
    write('ZADD', K_HOLDS_BY_SKU, 0, hold_member(r, l.sku))
    write('ZADD', K_HOLDS_DUE, fmt(r.expiresAt), enc(r.id) .. l.sku)
  end
end

-- An extend: every live hold of the reservation moves to the new expiry, in both hold indexes.
local function move_holds(d)
  local r = reservation(d, d.extended.id)
  for _, s in ipairs(r.holds) do
    write('ZREM', K_HOLDS_BY_SKU, hold_member(r, s))
    write('ZADD', K_HOLDS_DUE, fmt(d.extended.expiresAt), enc(r.id) .. s)
  end
  r.expiresAt = d.extended.expiresAt
  for _, s in ipairs(r.holds) do write('ZADD', K_HOLDS_BY_SKU, 0, hold_member(r, s)) end
end

-- An amend: the record takes the new lines; a new SKU gets a hold at the reservation's expiry
-- (in both indexes), a kept one whose qty changed a new member (the member names the qty).
-- Dropped SKUs' holds ended already (update_reservations, with the old lines).
local function amend_holds(d)
  local r = reservation(d, d.amended.id)
  local old = { id = r.id, lines = r.lines, expiresAt = r.expiresAt }
  r.lines, r.holds = d.amended.lines, skus_of(d.amended.lines)
  for _, l in ipairs(r.lines) do
    local was = held_qty(old, l.sku)
    if was == 0 then write('ZADD', K_HOLDS_DUE, fmt(r.expiresAt), enc(r.id) .. l.sku) end
    if was ~= l.qty then
      if was ~= 0 then write('ZREM', K_HOLDS_BY_SKU, hold_member(old, l.sku)) end
      write('ZADD', K_HOLDS_BY_SKU, 0, hold_member(r, l.sku))
    end
  end
end

-- Rewrites every stored reservation this draft changed: holds ended, expired, settled, extended,
-- amended.
local function update_reservations(d, outcome)
  local touched, order = {}, {}
  local function touch(id)
    if not touched[id] then touched[id] = true; order[#order + 1] = id end
  end
  if d.extended then
    move_holds(d)
    touch(d.extended.id)
  end
  for _, h in ipairs(d.ended_list) do
    local r = reservation(d, h.id)
    write('ZREM', K_HOLDS_BY_SKU, hold_member(r, h.sku))
    write('ZREM', K_HOLDS_DUE, enc(h.id) .. h.sku)
    touch(h.id)
  end
  -- After the ended holds: their members were found by the lines before the amend.
  if d.amended then
    amend_holds(d)
    touch(d.amended.id)
  end
  for _, id in ipairs(d.expired_list) do touch(id) end
  if d.settled then touch(d.settled.id) end
  for _, id in ipairs(order) do
    local r = reservation(d, id)
    local holds = {}
    for _, s in ipairs(r.holds) do
      if not d.ended[enc(id) .. s] then holds[#holds + 1] = s end
    end
    r.holds = holds
    if d.settled and d.settled.id == id then
      r.state, r.committed, r.outcome = d.settled.state, d.settled.committed, outcome
    elseif d.expired[id] and r.state == 'held' then
      r.state = 'expired'
    end
    write('HSET', K_RESERVATIONS, id, record_json(r))
  end
end

-- The public reservation an extend or amend answers with: its record, still held, with these
-- lines and expiry (the record itself is rewritten after the outcome is made).
local function changed_json(r, lines, expires_at)
  return public_reservation_json({ id = r.id, lines = lines, expiresAt = expires_at, createdAt = r.createdAt, meta = r.meta, buyer = r.buyer })
end

-- An applied outcome's JSON up to its levels (the closing brace and any further field follow).
local function applied_json(entries, levels)
  return '{"ok":true,"replayed":false,"entries":[' .. table.concat(entries, ',') .. '],"levels":[' .. table.concat(levels, ',') .. ']'
end

-- The stored request record (see the header: `requests`); `at` as text.
local function request_record(kind, at, fingerprint, outcome)
  return kind .. '\n' .. at .. '\n' .. fingerprint .. '\n' .. outcome
end

--[[
  A deduct's outcome, kept once (layout 3). An applied deduct without anyOf lines answers only
  what the caller cannot know: the seq of its first entry and, per line in its entries' order
  (the lines, merged and sorted), the SKU's stored level field after it; the store builds the
  entries and levels from its command (redis-codec.ts, takenOutcome). Its request record keeps
  the same tail after "~" instead of the outcome JSON, which request_outcome rebuilds from the
  entries it names (compaction deletes the record with its first entry, so while the record is
  there its entries are too). `fields`: the level fields, in the entries' order.
]]
local function taken_tail(first_seq, fields)
  return fmt(first_seq) .. '\n' .. table.concat(fields, '\n')
end

local function record_taken(request_id, at, fingerprint, tail)
  write('HSET', K_REQUESTS, request_id, request_record('deduct', at, fingerprint, '~' .. tail))
  return 'a' .. tail
end

-- The outcome JSON of a written draft (with replayed false).
local function outcome_json(d, all, own_entries)
  local levels = {}
  for i, sku in ipairs(d.levels) do levels[i] = level_json(sku, counters(d, sku)) end
  local outcome = applied_json(d.sweep and all or own_entries, levels)
  if d.sweep then
    outcome = outcome .. ',"expired":' .. fmt(#d.ended_list) .. ',"more":' .. tostring(d.sweep.more)
  end
  if d.allocations then outcome = outcome .. ',"allocations":' .. d.allocations end
  if d.reservation then outcome = outcome .. ',"reservation":' .. public_reservation_json(d.reservation) end
  if d.extended then
    local r = reservation(d, d.extended.id)
    outcome = outcome .. ',"reservation":' .. changed_json(r, r.lines, d.extended.expiresAt)
  end
  if d.amended then
    local r = reservation(d, d.amended.id)
    outcome = outcome .. ',"reservation":' .. changed_json(r, d.amended.lines, r.expiresAt)
  end
  return outcome .. '}'
end

-- Writes the draft and records its request; returns the operation's reply: "A" .. its outcome
-- JSON, or a deduct's "a" .. tail (taken_tail).
local function persist(d)
  local all, own_entries, own_seq = write_entries(d)
  write_levels(d)
  write_buyers(d)
  local reply, outcome
  if d.request and d.request.kind == 'deduct' and not d.allocations then
    local fields = {}
    for i, sku in ipairs(d.levels) do fields[i] = level_field(counters(d, sku)) end
    reply = record_taken(d.request.id, fmt(d.at), d.request.fingerprint, taken_tail(own_seq, fields))
  else
    outcome = outcome_json(d, all, own_entries)
    if d.request then
      write('HSET', K_REQUESTS, d.request.id, request_record(d.request.kind, fmt(d.at), d.request.fingerprint, outcome))
    end
    reply = 'A' .. outcome
  end
  if d.reversal then
    for _, l in ipairs(d.reversal.lines) do write('HINCRBY', K_REVERSED, enc(d.reversal.of) .. l.sku, fmt(l.qty)) end
  end
  if d.reservation then insert_reservation(d.reservation) end
  update_reservations(d, outcome)
  return reply
end

--------------------------------------------------------------------------------------------
-- How an operation ends. Replies: "A" .. outcome JSON (applied), "a" .. tail (an applied deduct
-- without anyOf lines, see taken_tail), "R" .. outcome JSON (a replay), "X" .. rejection JSON, "C" .. the stored kind (IDEMPOTENCY_CONFLICT), "B" .. a SKU
-- (INVALID_INPUT: a deduct or reserve of a SKU with a buyerMax named no buyer, or an amend's
-- reservation has none; nothing was written). Inside a batch, also "E", "H" and "N" (see batch.lua).

-- Writes only the due expiries the operation met, if any: it records nothing of its own.
local function expiries_only(d)
  if #d.steps > 0 then
    d.request = nil
    d.levels = {}
    own(d)
    persist(d)
  end
end

-- A rejection.
local function reject(d, rejection)
  expiries_only(d)
  return 'X' .. rejection
end

-- A replay decided by a reservation's state.
local function replay(d, outcome)
  expiries_only(d)
  return 'R' .. outcome
end

local function apply(d, skus)
  d.levels = skus
  return persist(d)
end

local function parse_request(raw)
  local a = string.find(raw, '\n', 1, true)
  local b = string.find(raw, '\n', a + 1, true)
  local c = string.find(raw, '\n', b + 1, true)
  return { kind = string.sub(raw, 1, a - 1), at = tonumber(string.sub(raw, a + 1, b - 1)), fingerprint = string.sub(raw, b + 1, c - 1),
    outcome = string.sub(raw, c + 1) }
end

-- The outcome JSON of a parsed request record: as kept, or a deduct's tail ("~", see taken_tail)
-- rebuilt from the entries it names and the level fields it kept, as the general path writes it.
local function request_outcome(request_id, stored)
  local kept = stored.outcome
  if string.sub(kept, 1, 1) ~= '~' then return kept end
  local parts = {}
  for part in string.gmatch(string.sub(kept, 2), '[^\n]+') do parts[#parts + 1] = part end
  local first = tonumber(parts[1])
  if not first or #parts < 2 then invariant('request ' .. q(request_id) .. ' has a malformed record') end
  local entries, levels = {}, {}
  for j = 2, #parts do
    local seq = fmt(first + j - 2)
    local e = redis.call('HGET', K_ENTRIES, seq)
    if not e then invariant('request ' .. q(request_id) .. ' names entry ' .. seq .. ', which is gone') end
    local sku = cjson.decode(e).sku
    entries[j - 1] = e
    levels[j - 1] = level_json(sku, counters_of(sku, parts[j]))
  end
  return applied_json(entries, levels) .. '}'
end

-- What a request id already recorded means for an operation of `kind` under it (as the core's
-- recordedOutcome): a replay, a conflict, or one of the two refusals around a revoked id; nil
-- when the id is free. Checked first: it reads and writes nothing else, due expiries included.
local function recorded(request_id, fingerprint, kind)
  local raw = redis.call('HGET', K_REQUESTS, request_id)
  if not raw then return nil end
  local stored = parse_request(raw)
  if stored.kind == 'revoke' and kind ~= 'revoke' then
    return 'X{"ok":false,"code":"REQUEST_REVOKED","requestId":' .. q(request_id) .. '}'
  end
  if kind == 'revoke' and stored.kind ~= 'revoke' then
    return 'X{"ok":false,"code":"REQUEST_APPLIED","requestId":' .. q(request_id) .. ',"kind":"' .. stored.kind .. '"}'
  end
  if stored.fingerprint == fingerprint then return 'R' .. request_outcome(request_id, stored) end
  return 'C' .. stored.kind
end

-- The draft of a request-carrying operation whose id was found free (begin's second half).
local function draft_of(a, kind)
  local d = new_draft(tonumber(a[3]))
  d.request = { id = a[1], kind = kind, fingerprint = a[2] }
  return d, nil, a[1], opt(a[4])
end

-- Fields every request-carrying operation sends first: requestId, fingerprint, at, meta.
local function begin(a, kind)
  local done = recorded(a[1], a[2], kind)
  if done then return nil, done end
  return draft_of(a, kind)
end

-- An amend's credit: what its reservation holds of each SKU (sku -> qty), which its new lines
-- may take again, so the stock and the buyer's limit count it as free. nil (deduct, reserve): none.
local function credited(credit, sku) return credit and credit[sku] or 0 end

local function insufficient(lines, d, credit)
  for _, l in ipairs(lines) do
    local can = available(counters(d, l.sku)) + credited(credit, l.sku)
    if can < l.qty then
      return '{"ok":false,"code":"INSUFFICIENT_STOCK","sku":' .. q(l.sku) .. ',"requested":' .. fmt(l.qty) .. ',"available":' ..
        fmt(can) .. '}'
    end
  end
  return nil
end

-- A fast path's writes, as persist makes them for one step: the entries (seq, entry, its SKU's
-- index), then the levels. `changes`: { sku, on_delta, res_delta, after }, in order; `at` as
-- text. Returns the seq of the first entry, the entries' JSON and the level fields written.
local function write_changes(s, changes, at)
  local n = #changes
  local first = write('INCRBY', K_SEQ, fmt(n)) - n + 1
  local seq, entries, fields = first, {}, {}
  for j, c in ipairs(changes) do
    local seq_text = fmt(seq)
    local e = entry_json(seq_text, s, c, at)
    write('HSET', K_ENTRIES, seq_text, e)
    index_entry(c.sku, seq_text)
    entries[j] = e
    seq = seq + 1
  end
  for j, c in ipairs(changes) do
    fields[j] = level_field(c.after)
    write('HSET', K_LEVELS, c.sku, fields[j])
  end
  return first, entries, fields
end

-- The levels' JSON of a fast path's changes, in order.
local function changed_levels(changes)
  local levels = {}
  for j, c in ipairs(changes) do levels[j] = level_json(c.sku, c.after) end
  return levels
end

--[[
  The common deduct or reserve, without the draft: one-SKU lines only (no anyOf line), no buyer,
  and every line's SKU has a level, no unit reserved (so no hold of it can be due) and no
  buyerMax (which wants a buyer). For such an operation the general path (deduct.lua,
  reserve.lua) checks nothing else: no buyer is missing, no due hold expires, no buyer limit
  applies; so this decides as it does, with the same checks (insufficient, check_after) in the
  same order, and writes the same keys in the same order with the same encoders (entry_json,
  level_field; a deduct's record_taken; a reserve's level_json, applied_json, request_record,
  public_reservation_json and insert_reservation). Anything else returns nil, and the counters
  it read, which no write changed, seed the general path's draft. A rejection writes nothing, as
  there: no due expiry to write. `a`: the operation's ARGV (deduct.lua, reserve.lua: a reserve
  has expiresAt before the buyer).
]]
local function plain_take(a, kind)
  local reserve = kind == 'reserve'
  local b = reserve and 6 or 5
  if a[b] ~= '' then return nil end
  local n = tonumber(a[b + 1])
  if n < 1 or a[b + 2 + 2 * n] ~= '0' then return nil end
  local lines, cache = {}, {}
  for j = 1, n do
    local sku = a[b + 2 * j]
    -- Lines come merged (one per SKU); a caller that sent a SKU twice gets the general path.
    if cache[sku] then return nil, cache end
    local c = read_counters(sku)
    if not c then return nil, cache end
    cache[sku] = c
    if c.res ~= 0 or c.bm ~= nil then return nil, cache end
    lines[j] = { sku = sku, qty = tonumber(a[b + 1 + 2 * j]) }
  end
  local refusal = insufficient(lines, { cache = cache }, nil)
  if refusal then return 'X' .. refusal end
  local request_id, at, meta = a[1], tonumber(a[3]), opt(a[4])
  local changes = {}
  for j, l in ipairs(lines) do
    local before = cache[l.sku]
    local on_delta, res_delta = -l.qty, 0
    if reserve then on_delta, res_delta = 0, l.qty end
    local after = { on = before.on + on_delta, res = before.res + res_delta, ver = before.ver + 1, bo = before.bo, ls = before.ls,
      bm = before.bm }
    check_after(l.sku, after)
    changes[j] = { sku = l.sku, on_delta = on_delta, res_delta = res_delta, after = after }
  end
  local at_text = fmt(at)
  local first, entries, fields = write_changes({ request_id = request_id, kind = kind, meta = meta }, changes, at_text)
  if not reserve then return record_taken(request_id, at_text, a[2], taken_tail(first, fields)) end
  local r = { id = request_id, state = 'held', lines = lines, expiresAt = tonumber(a[5]), createdAt = at, meta = meta, holds = skus_of(lines) }
  local outcome = applied_json(entries, changed_levels(changes)) .. ',"reservation":' .. public_reservation_json(r) .. '}'
  write('HSET', K_REQUESTS, request_id, request_record(kind, at_text, a[2], outcome))
  insert_reservation(r)
  return 'A' .. outcome
end

-- How a deduct or reserve begins: the answer of a recorded id, or the fast path's reply; else
-- the general path's draft (nil, then the draft, the request id and meta), seeded with the
-- counters the fast path read.
local function begin_take(a, kind)
  local done = recorded(a[1], a[2], kind)
  if done then return done end
  local reply, seen = plain_take(a, kind)
  if reply then return reply end
  local d, _, request_id, meta = draft_of(a, kind)
  if seen then
    for sku, c in pairs(seen) do d.cache[sku] = c end
  end
  return nil, d, request_id, meta
end

-- A deduct or reserve without a buyer on a SKU with a buyerMax: the SKU, or nil. Checked before
-- anything else of the operation, due expiries included (the core's requireBuyer); it reads only.
-- `skus`: every SKU the operation names, alternatives included, in JavaScript's order.
local function buyer_missing(skus, buyer, d)
  if buyer then return nil end
  for _, sku in ipairs(skus) do
    if counters(d, sku).bm ~= nil then return sku end
  end
  return nil
end

-- The first line (in SKU order) that would take the buyer past its SKU's buyerMax, as a
-- BUYER_LIMIT rejection; checked after due expiries (they give units back) and before the stock.
-- An amend's `taken` leaves out what its reservation holds (the credit): the new lines replace it.
local function buyer_limit(lines, buyer, d, credit)
  if not buyer then return nil end
  for _, l in ipairs(lines) do
    local limit = counters(d, l.sku).bm
    if limit ~= nil then
      local taken = buyer_taken(d, l.sku, buyer) - credited(credit, l.sku)
      if taken + l.qty > limit then
        return '{"ok":false,"code":"BUYER_LIMIT","sku":' .. q(l.sku) .. ',"buyer":' .. q(buyer) .. ',"limit":' .. fmt(limit) ..
          ',"taken":' .. fmt(taken) .. '}'
      end
    end
  end
  return nil
end

local function quantity_limit(sku, requested, on)
  return '{"ok":false,"code":"QUANTITY_LIMIT","sku":' .. q(sku) .. ',"requested":' .. fmt(requested) .. ',"onHand":' .. fmt(on) ..
    ',"limit":' .. fmt(QUANTITY_MAX) .. '}'
end

--------------------------------------------------------------------------------------------
-- What a deduct, reserve or amend takes: its one-SKU lines, or with anyOf lines what the
-- allocation picks (the core's requireBuyer, takingOf, allocate and pick, in the same order);
-- an amend's credit (what its reservation holds) counts as free.
--
-- Lines as given travel after the merged one-SKU lines (see deduct.lua): g (0: no anyOf line,
-- nothing follows), m, the m SKUs the lines name, distinct and sorted as JavaScript sorts
-- (the caller sorts: Lua compares bytes, not UTF-16 code units), then g lines, each
--   "sku", sku, qty                                        a one-SKU line, or
--   "anyOf", qty, split "1"|"0", prefer, k, k SKUs         alternatives, in priority order.

-- A SKU of a line as given: one the lines name, or the caller sent something else.
local function named_sku(sku, is_named)
  if not is_named[sku] then invariant('a line names SKU ' .. q(sku) .. ' that is not among the named SKUs') end
  return sku
end

-- One line as given from a[i]: { sku =, qty = } or { any = { sku, ... }, qty =, split =, most = },
-- and the position after it.
local function read_given_line(a, i, is_named)
  if a[i] == 'sku' then return { sku = named_sku(a[i + 1], is_named), qty = tonumber(a[i + 2]) }, i + 3 end
  if a[i] ~= 'anyOf' then invariant('a line as given starts with ' .. q(a[i] or '') .. ', not "sku" or "anyOf"') end
  local k = tonumber(a[i + 4])
  local any = {}
  for j = 1, k do any[j] = named_sku(a[i + 4 + j], is_named) end
  return { any = any, qty = tonumber(a[i + 1]), split = a[i + 2] == '1', most = a[i + 3] == 'mostAvailable' }, i + 5 + k
end

-- The lines as given from a[i] (format above): { named = { sku, ... }, lines = { ... } }, or nil
-- when no line is an anyOf line (the common case: the merged lines are all there is).
local function read_given(a, i)
  local g = tonumber(a[i] or '0')
  if g == 0 then return nil end
  local m = tonumber(a[i + 1])
  local named, is_named = {}, {}
  for j = 1, m do
    named[j] = a[i + 1 + j]
    is_named[named[j]] = true
  end
  i = i + 2 + m
  local lines = {}
  for j = 1, g do lines[j], i = read_given_line(a, i, is_named) end
  return { named = named, lines = lines }
end

-- The merged one-SKU lines from a[i] (n, then n pairs), then the lines as given after them.
local function read_order_lines(a, i)
  local lines = read_lines(a, i)
  return lines, read_given(a, i + 1 + 2 * #lines)
end

-- An anyOf line's alternatives, most left first; ties keep the listed order (JavaScript's sort
-- is stable, table.sort is not: the listed position breaks ties).
local function most_left_first(skus, left)
  local order, pos, lefts = {}, {}, {}
  for i, sku in ipairs(skus) do
    order[i], pos[sku], lefts[sku] = sku, i, left(sku)
  end
  table.sort(order, function(x, y)
    if lefts[x] ~= lefts[y] then return lefts[x] > lefts[y] end
    return pos[x] < pos[y]
  end)
  return order
end

-- What one anyOf line takes, in the order taken, given what each SKU has left; nil when it
-- cannot be filled. Without split the first alternative (in priority order) with the whole
-- line serves it; with split each gives what it has until the line is filled.
local function pick(line, left)
  local order = line.most and most_left_first(line.any, left) or line.any
  if not line.split then
    for _, sku in ipairs(order) do
      if left(sku) >= line.qty then return { { sku = sku, qty = line.qty } } end
    end
    return nil
  end
  local taken, rest = {}, line.qty
  for _, sku in ipairs(order) do
    local qty = math.min(left(sku), rest)
    if qty ~= 0 then
      taken[#taken + 1] = { sku = sku, qty = qty }
      rest = rest - qty
      if rest == 0 then return taken end
    end
  end
  return nil
end

-- INSUFFICIENT_STOCK of an anyOf line: its first alternative, and what all of them had left.
local function short_of_any(line, index, left)
  local sum, skus = 0, {}
  for j, sku in ipairs(line.any) do
    sum = sum + left(sku)
    skus[j] = q(sku)
  end
  return '{"ok":false,"code":"INSUFFICIENT_STOCK","sku":' .. q(line.any[1]) .. ',"requested":' .. fmt(line.qty) .. ',"available":' ..
    fmt(sum) .. ',"line":' .. fmt(index) .. ',"anyOf":[' .. table.concat(skus, ',') .. ']}'
end

-- Allocates the lines as given, in order, after the one-SKU lines (which have no choice): each
-- anyOf line sees what earlier lines took. Returns the merged lines taken (in the named SKUs'
-- order, so sorted as JavaScript sorts) and the allocations JSON, or nil and a rejection.
local function allocate(d, plain, given, credit)
  local used = {}
  for _, l in ipairs(plain) do used[l.sku] = l.qty end
  local function left(sku) return available(counters(d, sku)) + credited(credit, sku) - (used[sku] or 0) end
  local allocations = {}
  for i, line in ipairs(given.lines) do
    local taken = line.sku and { { sku = line.sku, qty = line.qty } } or pick(line, left)
    if not taken then return nil, short_of_any(line, i - 1, left) end
    -- A one-SKU line is in `used` already: it came with the merged lines.
    if not line.sku then
      for _, t in ipairs(taken) do used[t.sku] = (used[t.sku] or 0) + t.qty end
    end
    allocations[i] = '{"line":' .. fmt(i - 1) .. ',"taken":' .. lines_json(taken) .. '}'
  end
  local lines = {}
  for _, sku in ipairs(given.named) do
    if used[sku] then lines[#lines + 1] = { sku = sku, qty = used[sku] } end
  end
  return lines, '[' .. table.concat(allocations, ',') .. ']'
end

-- With anyOf lines the allocation decides what is taken: the one-SKU lines' stock first, then
-- the allocation, then the buyer's limit on what was allocated. The merged lines, or nil and a
-- rejection.
local function allocated(d, lines, given, buyer, credit)
  local refusal = insufficient(lines, d, credit)
  if refusal then return nil, refusal end
  local merged, allocations = allocate(d, lines, given, credit)
  if not merged then return nil, allocations end
  refusal = buyer_limit(merged, buyer, d, credit)
  if refusal then return nil, refusal end
  d.allocations = allocations
  return merged
end

-- Every SKU a deduct, reserve or amend names, alternatives included, in JavaScript's order.
local function named_of(lines, given) return given and given.named or skus_of(lines) end

-- What a deduct, reserve or amend takes once its buyer passed buyer_missing, after due expiries
-- of the `named` SKUs: the merged lines, or nil and a rejection reply (the expiries written).
-- One-SKU lines only: the buyer's limit first, then the stock. `credit`: see credited.
local function take(d, named, lines, given, buyer, credit)
  expire_due(d, named)
  local taken, refusal = lines, nil
  if given then
    taken, refusal = allocated(d, lines, given, buyer, credit)
  else
    refusal = buyer_limit(lines, buyer, d, credit) or insufficient(lines, d, credit)
  end
  if refusal then return nil, reject(d, refusal) end
  return taken
end

-- What a deduct or reserve takes: the merged lines, or nil and the reply ("B" .. SKU when no
-- buyer was named for a limited SKU, before anything; else take's rejection).
local function taking(d, lines, given, buyer)
  local named = named_of(lines, given)
  local missing = buyer_missing(named, buyer, d)
  if missing then return nil, 'B' .. missing end
  return take(d, named, lines, given, buyer, nil)
end
