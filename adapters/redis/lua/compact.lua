--[[
  compact: one bounded step of retention (src/store.ts CompactQuery, src/checkpoint.ts).
  1. Walks the entries in seq order from the horizon on, at most `limit`, and stops at the first
     that must stay: one with at >= before, or one whose reservation (its reservationId, else the
     requestId of a reserve, commit, release or expire entry) is still recorded and not settled
     (still held, or a live hold left). Each entry that goes is folded into its SKU's checkpoint
     and deleted with its bySku member; with it goes the request record it owns (restock,
     deduct, adjust, reverse, policy, amend) and that request's reversal tally of the SKU. A
     commit, release or expire entry that goes while its reservation is still recorded (so
     settled) takes the reservation record, the reserve's request record and the reservation's
     reversal tally (every SKU of its lines): its end is then older than the window. Deleting
     what is already gone is a no-op: a multi-SKU operation has several entries, and a step may
     end between them.
  2. Closed ids (revoke records) have no entry to walk, and a revoke writes its record alone (no
     index: "a revoke writes only its record"), so compaction finds them by a pass over
     `requests` with HSCAN, one page of about `limit` records per step, removing those with
     at < before (at most `limit` a step). A pass under way goes on at every step (`more` until
     it ends, so one compact() call finishes it); a new pass starts once the last one started at
     or before `before`: one pass per window at most, so the records are read about once per
     window, and a closed id goes at the latest a window (plus the time between compactions)
     after it left the window. Records present through a whole pass are seen by it (HSCAN's
     guarantee); ledgers of the earlier layout need no migration: their closed ids are found
     the same way.

  Why one script on per-ledger keys, not two phases: the SKUs a step folds into cannot be named
  up front, so checkpoints live in fields of the ledger's `checkpoints` hash (fields built with
  enc(), see checkpoint.lua), and the whole step stays one atomic script with no horizon to
  re-check between a read and a write.
  Everything is read and decided before the first write: Lua has no rollback.

  Composed with: lib.lua, checkpoint.lua, compact.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: before, limit, now
  Reply: "requests,reservations,entries,compactedThrough,more": the request records (closed ids
         included) and reservation records this step deleted, its entries deleted, the horizon
         after it, and more "1" when a limit cut the step short or a pass is under way (call
         again), else "0".
]]

local RESERVATION_KINDS = { reserve = true, commit = true, release = true, expire = true }
local ENDS = { commit = true, release = true, expire = true }

-- The reservation an entry belongs to (src/checkpoint.ts reservationOf), or nil.
local function reservation_of(e)
  if type(e.reservationId) == 'string' then return e.reservationId end
  if RESERVATION_KINDS[e.kind] then return e.requestId end
  return nil
end


-- Whether an entry must stay: at or after the cutoff, or pinned by a reservation still recorded
-- and not settled (src/checkpoint.ts isSettled).
local function stays(e, before, records)
  if e.at >= before then return true end
  local id = reservation_of(e)
  if not id then return false end
  local r = cached_reservation(records, id)
  return r ~= false and (r.state == 'held' or #r.holds > 0)
end

-- The entries after the horizon that go, in seq order; the reservations whose end goes with
-- them ({ id =, r = }); and whether the limit stopped the walk.
local function walk(horizon, before, limit)
  local last = tonumber(redis.call('GET', K_SEQ) or '0')
  local going, ended, records = {}, {}, {}
  for s = horizon + 1, math.min(last, horizon + limit) do
    local raw = redis.call('HGET', K_ENTRIES, fmt(s))
    -- Compaction alone removes entries, from the horizon up: a gap is foreign damage.
    if not raw then invariant('entry ' .. fmt(s) .. ' is missing after the horizon ' .. fmt(horizon)) end
    local e = cjson.decode(raw)
    if stays(e, before, records) then return going, ended, false end
    going[#going + 1] = e
    local r = ENDS[e.kind] and records[e.requestId]
    if r then
      ended[#ended + 1] = { id = e.requestId, r = r }
      -- Gone from here on: its other entries in this step are not pinned, and it goes once.
      records[e.requestId] = false
    end
  end
  return going, ended, #going == limit
end

-- Adds `delta` to a holds or buyer part of the plan, read from the checkpoint the first time.
local function add_part(plan, field, delta)
  local v = plan.parts[field]
  if v == nil then
    local raw = redis.call('HGET', K_CHECKPOINTS, field)
    v = tonumber(raw or '0')
    if not v then invariant('a checkpoint part holds ' .. q(raw)) end
    plan.order[#plan.order + 1] = field
  end
  plan.parts[field] = v + delta
end

-- Folds an entry into its SKU's checkpoint in the plan (src/checkpoint.ts foldIntoCheckpoint).
local function fold(plan, e)
  local c = plan.counters[e.sku]
  if not c then
    c = cp_counters(e.sku)
    plan.counters[e.sku] = c
    plan.skus[#plan.skus + 1] = e.sku
  end
  c.on, c.res, c.ver = c.on + e.onHandDelta, c.res + e.reservedDelta, c.ver + 1
  if e.reservedDelta ~= 0 then
    local holder = type(e.reservationId) == 'string' and e.reservationId or e.requestId
    add_part(plan, cp_field(e.sku, 'h', holder), e.reservedDelta)
  end
  if type(e.buyer) == 'string' then add_part(plan, cp_field(e.sku, 'b', e.buyer), e.reservedDelta - e.onHandDelta) end
end

-- Where the pass for closed ids stands: its HSCAN cursor, or nil when no pass is under way;
-- and the `now` the last pass started at (nil: never).
local function scan_state()
  local v = redis.call('GET', K_CLOSED_SCAN)
  if not v then return nil, nil end
  local cursor, start = string.match(v, '^(%w+),(%-?%d+)$')
  if not cursor then invariant('the closed-id scan key holds ' .. q(v)) end
  return cursor ~= 'done' and cursor or nil, tonumber(start)
end

-- One page of the pass for closed ids: those with at < before (at most `limit`), the scan state
-- to store after it and whether the pass goes on; nil when no pass is under way or due.
local function closed_page(before, limit, now)
  local cursor, start = scan_state()
  if not cursor then
    if start and start > before then return nil end
    cursor, start = '0', now
  end
  local page = redis.call('HSCAN', K_REQUESTS, cursor, 'COUNT', limit)
  local ids, fields = {}, page[2]
  for i = 1, #fields, 2 do
    local raw = fields[i + 1]
    if string.sub(raw, 1, 7) == 'revoke\n' and parse_request(raw).at < before then
      -- More than `limit` on one page: the same page again next step (the ones deleted are gone).
      if #ids == limit then return { ids = ids, state = cursor .. ',' .. fmt(start), more = true } end
      ids[#ids + 1] = fields[i]
    end
  end
  local done = page[1] == '0'
  return { ids = ids, state = (done and 'done' or page[1]) .. ',' .. fmt(start), more = not done }
end

local function write_checkpoints(plan)
  for _, sku in ipairs(plan.skus) do
    local c, field = plan.counters[sku], cp_field(sku, 'c')
    write('HSET', K_CHECKPOINTS, field, fmt(c.on) .. ',' .. fmt(c.res) .. ',' .. fmt(c.ver))
    write('ZADD', K_CP_BY_SKU, 0, field)
  end
  for _, field in ipairs(plan.order) do set_indexed(K_CHECKPOINTS, K_CP_BY_SKU, field, plan.parts[field]) end
end

-- Deletes an entry and what goes with it; returns the request records deleted.
local function drop_entry(e)
  write('HDEL', K_ENTRIES, fmt(e.seq))
  write('ZREM', sku_index(e.sku), fmt(e.seq))
  if RESERVATION_KINDS[e.kind] then return 0 end
  write('HDEL', K_REVERSED, enc(e.requestId) .. e.sku)
  return write('HDEL', K_REQUESTS, e.requestId)
end

-- Deletes a settled reservation whose end went; returns the request and reservation records deleted.
local function drop_reservation(id, r)
  -- A reverse of the committed reservation tallied under its id, per SKU of its lines.
  for _, l in ipairs(r.lines) do write('HDEL', K_REVERSED, enc(id) .. l.sku) end
  return write('HDEL', K_REQUESTS, id), write('HDEL', K_RESERVATIONS, id)
end

-- Deletes the closed ids of a page and stores where the pass stands; returns the records deleted.
local function write_closed(page)
  if not page then return 0 end
  local requests = 0
  for _, id in ipairs(page.ids) do requests = requests + write('HDEL', K_REQUESTS, id) end
  write('SET', K_CLOSED_SCAN, page.state)
  return requests
end

OPS.compact = function(a)
  local before, limit, now = tonumber(a[1]), tonumber(a[2]), tonumber(a[3])
  local horizon = tonumber(redis.call('GET', K_HORIZON) or '0')
  local going, ended, cut = walk(horizon, before, limit)
  local plan = { counters = {}, skus = {}, parts = {}, order = {} }
  for _, e in ipairs(going) do fold(plan, e) end
  local page = closed_page(before, limit, now)
  -- Every read and check is done: the writes follow.
  write_checkpoints(plan)
  local requests, reservations = 0, 0
  for _, e in ipairs(going) do requests = requests + drop_entry(e) end
  for _, x in ipairs(ended) do
    local rq, rs = drop_reservation(x.id, x.r)
    requests, reservations = requests + rq, reservations + rs
  end
  if #going > 0 then
    horizon = going[#going].seq
    write('SET', K_HORIZON, fmt(horizon))
  end
  requests = requests + write_closed(page)
  local more = cut or (page ~= nil and page.more)
  return fmt(requests) .. ',' .. fmt(reservations) .. ',' .. fmt(#going) .. ',' .. fmt(horizon) .. ',' .. (more and '1' or '0')
end
