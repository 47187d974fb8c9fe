--[[
  amend: replaces a held reservation's lines in one step, under the amend's own request id. The
  new lines are taken as a reserve takes them (with the reservation's buyer and its limits,
  anyOf lines allocated), against what is available plus what the reservation holds (its
  credit). One "amend" entry per SKU whose held qty changes (reservedDelta = new - old, the
  reservation's id in reservationId, its buyer), in JavaScript's SKU order. Holds follow: a
  dropped SKU's hold ends, a kept one takes its new qty, a new SKU is held until the
  reservation's expiry, which stays. The outcome (the reservation as amended, and the
  allocations with anyOf lines) is the request's record, so its replays give it back.
  Composed with: lib.lua, settle.lua, amend.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", reservationId, n, then n pairs sku, qty (the
        one-SKU lines, merged, sorted by SKU; n may be 0 when there are anyOf lines), then the
        lines as given, as in deduct.lua
  Reply: "A"|"R" .. outcome JSON (with the reservation as amended), "X" .. RESERVATION_NOT_FOUND |
         RESERVATION_EXPIRED | RESERVATION_COMMITTED | RESERVATION_RELEASED | BUYER_LIMIT |
         INSUFFICIENT_STOCK | REQUEST_REVOKED JSON, "C" .. stored kind, or "B" .. a SKU with a
         buyerMax when the reservation has no buyer (nothing written).
]]

-- JavaScript orders strings by UTF-16 code units, Lua by bytes (UTF-8: code point order). They
-- differ only where a code point above U+FFFF (UTF-8 lead byte F0 to F4; a surrogate pair,
-- D800 to DFFF, in UTF-16) meets one from U+E000 to U+FFFF (lead byte EE or EF): JavaScript
-- puts the former first. A byte from EE up is always a lead byte, so both start a character.
local function js_less(x, y)
  for i = 1, math.min(#x, #y) do
    local bx, by = string.byte(x, i), string.byte(y, i)
    if bx ~= by then
      if bx >= 0xEE and by >= 0xEE and (bx >= 0xF0) ~= (by >= 0xF0) then return bx >= 0xF0 end
      return bx < by
    end
  end
  return #x < #y
end

-- sku -> qty of some lines: what the reservation holds is the credit its new lines may take again.
local function qty_by_sku(lines)
  local by_sku = {}
  for _, l in ipairs(lines) do by_sku[l.sku] = l.qty end
  return by_sku
end

-- One delta per SKU of the old or the new lines whose qty changes (new - old), in JavaScript's
-- order (the core sorts the union by code units; Lua's own order is bytes); and their SKUs.
local function amend_deltas(old, new)
  local held, after, skus = qty_by_sku(old), qty_by_sku(new), skus_of(old)
  for _, l in ipairs(new) do
    if not held[l.sku] then skus[#skus + 1] = l.sku end
  end
  table.sort(skus, js_less)
  local deltas, changed = {}, {}
  for _, sku in ipairs(skus) do
    local delta = (after[sku] or 0) - (held[sku] or 0)
    if delta ~= 0 then
      deltas[#deltas + 1] = { sku, 0, delta }
      changed[#changed + 1] = sku
    end
  end
  return deltas, changed
end

OPS.amend = function(a)
  local d, done, request_id, meta = begin(a, 'amend')
  if done then return done end
  local id = a[5]
  local lines, given = read_order_lines(a, 6)
  local named = named_of(lines, given)
  -- Before anything, due expiries included (the core's requireBuyer): the buyer is the reservation's.
  local stored = reservation(d, id)
  local missing = stored and buyer_missing(named, stored.buyer, d)
  if missing then return 'B' .. missing end
  local r, rejection = settling(d, id)
  if not r then return reject(d, rejection) end
  if r.state == 'committed' then return reject(d, simple_rejection('RESERVATION_COMMITTED', id)) end
  if r.state == 'released' then return reject(d, simple_rejection('RESERVATION_RELEASED', id)) end
  local taken, reply = take(d, named, lines, given, r.buyer, qty_by_sku(r.lines))
  if not taken then return reply end
  local deltas, changed = amend_deltas(r.lines, taken)
  own(d)
  step(d, request_id, 'amend', meta, deltas, r.buyer, id)
  local kept = qty_by_sku(taken)
  for _, sku in ipairs(r.holds) do
    if not kept[sku] then end_hold(d, id, sku) end
  end
  d.amended = { id = id, lines = taken }
  -- Levels of the SKUs whose hold changed: an unchanged line is not touched.
  return apply(d, changed)
end
