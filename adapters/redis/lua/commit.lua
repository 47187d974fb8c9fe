--[[
  commit: turns a held reservation into a sale: onHand -= sold, reserved -= held on every line;
  a partial commit releases the rest in the same entries (and gives it back to the reservation's
  buyer, if it has one). Idempotent by the reservation's state.
  Composed with: lib.lua, settle.lua, commit.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the twelve ledger keys (lib.lua).
  ARGV: reservationId, at, n (-1: sell all that is held), then n pairs sku, qty
  Reply: "A"|"R" .. outcome JSON, "X" .. RESERVATION_NOT_FOUND | RESERVATION_EXPIRED |
         RESERVATION_RELEASED | EXCEEDS_RESERVATION JSON, or "Creserve" (another sale committed).
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

OPS.commit = function(a)
  local id = a[1]
  local d = new_draft(tonumber(a[2]))
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
