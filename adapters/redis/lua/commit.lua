--[[
  commit: turns a held reservation into a sale: onHand -= sold, reserved -= held on every line;
  a partial commit releases the rest in the same entries (and gives it back to the reservation's
  buyer, if it has one). Idempotent by the reservation's state.
  Composed with: lib.lua, settle.lua, commit.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: reservationId, at, n (-1: sell all that is held), then n pairs sku, qty
  Reply: "A"|"R" .. outcome JSON, "X" .. RESERVATION_NOT_FOUND | RESERVATION_EXPIRED |
         RESERVATION_RELEASED | EXCEEDS_RESERVATION JSON, or "Creserve" (another sale committed).
  The common case takes plain_commit, which decides as the general path.
]]

-- What `sold` sells of every reserved SKU (0 where not named), in the reservation's order.
local function sale_of(r, sold)
  local by_sku = {}
  for _, l in ipairs(sold) do by_sku[l.sku] = l.qty end
  local sale = {}
  for i, l in ipairs(r.lines) do sale[i] = { sku = l.sku, qty = by_sku[l.sku] or 0 } end
  return sale
end

local function same_lines(x, y)
  if #x ~= #y then return false end
  for i, l in ipairs(x) do
    if l.sku ~= y[i].sku or l.qty ~= y[i].qty then return false end
  end
  return true
end

-- Every SKU of `sold` is one of the reservation's lines.
local function names_held(r, sold)
  for _, l in ipairs(sold) do
    local found = false
    for _, x in ipairs(r.lines) do
      if x.sku == l.sku then found = true end
    end
    if not found then return false end
  end
  return true
end

--[[
  The common commit, without the draft: all of a held reservation (n = -1), before its expiry,
  with no buyer, when no hold of any of its SKUs is due (so the general path would expire
  nothing first: settling in settle.lua). For it the general path below checks nothing else, so
  this decides as it does and writes the same keys in the same order with the same encoders:
  the entries and levels (as persist), then the ended holds and the record (as
  update_reservations). Anything else returns nil, with the reservation it read, which no write
  changed, for the general path's cache.
]]
local function plain_commit(a)
  if a[3] ~= '-1' then return nil end
  local id, at = a[1], tonumber(a[2])
  local r = cached_reservation({}, id)
  if not r or r.state ~= 'held' or r.buyer ~= nil or at >= r.expiresAt then return nil, r end
  local changes = {}
  for j, l in ipairs(r.lines) do
    local c = read_counters(l.sku)
    if not c or #due_holds(l.sku, at, 1) > 0 then return nil, r end
    local after = { on = c.on - l.qty, res = c.res - l.qty, ver = c.ver + 1, bo = c.bo, ls = c.ls, bm = c.bm }
    check_after(l.sku, after)
    changes[j] = { sku = l.sku, on_delta = -l.qty, res_delta = -l.qty, after = after }
  end
  local _, entries = write_changes({ request_id = id, kind = 'commit', meta = r.meta }, changes, fmt(at))
  local outcome = applied_json(entries, changed_levels(changes)) .. '}'
  for _, sku in ipairs(r.holds) do
    write('ZREM', K_HOLDS_BY_SKU, hold_member(r, sku))
    write('ZREM', K_HOLDS_DUE, enc(id) .. sku)
  end
  r.holds, r.state, r.committed, r.outcome = {}, 'committed', sale_of(r, r.lines), outcome
  write('HSET', K_RESERVATIONS, id, record_json(r))
  return 'A' .. outcome
end

OPS.commit = function(a)
  local reply, read = plain_commit(a)
  if reply then return reply end
  local id = a[1]
  local d = new_draft(tonumber(a[2]))
  -- What the shortcut read (unchanged: it wrote nothing), so it is not read again.
  if read ~= nil then d.res_cache[id] = read end
  local r, rejection = settling(d, id)
  if not r then return reject(d, rejection) end
  local sold = read_lines(a, 3) or r.lines
  if r.state == 'released' then return reject(d, simple_rejection('RESERVATION_RELEASED', id)) end
  if r.state == 'committed' then
    if r.committed and r.outcome and names_held(r, sold) and same_lines(r.committed, sale_of(r, sold)) then return replay(d, r.outcome) end
    return 'Creserve'
  end
  for _, l in ipairs(sold) do
    local holding = held_qty(r, l.sku)
    if l.qty > holding then
      return reject(d, '{"ok":false,"code":"EXCEEDS_RESERVATION","reservationId":' .. q(id) .. ',"sku":' .. q(l.sku) ..
        ',"requested":' .. fmt(l.qty) .. ',"held":' .. fmt(holding) .. '}')
    end
  end
  local committed = sale_of(r, sold)
  own(d)
  for _, sku in ipairs(r.holds) do end_hold(d, id, sku) end
  local deltas = {}
  for i, l in ipairs(r.lines) do deltas[i] = { l.sku, 0 - committed[i].qty, -l.qty } end
  step(d, id, 'commit', r.meta, deltas, r.buyer)
  d.settled = { id = id, state = 'committed', committed = committed }
  return apply(d, skus_of(r.lines))
end
