--[[
  reverse: gives back units an earlier deduct (or committed reservation) took, all or some, and
  gives them back to the buyer the original took for (its entries name the buyer).
  Composed with: lib.lua, reverse.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", of, n (-1: everything left), then n pairs sku, qty
  Reply: "A"|"R" .. outcome JSON, "X" .. REQUEST_NOT_FOUND | NOT_REVERSIBLE (also for an `of` that was
         revoked) | REVERSAL_EXCEEDS_ORIGINAL | QUANTITY_LIMIT | REQUEST_REVOKED JSON, or "C" .. stored kind.
]]

-- Units of each SKU the original took (SKUs in its order) and the buyer it took for (a deduct's
-- entries', a committed reservation's; nil for none), or a rejection.
local function taken_by(d, of, raw)
  local original = parse_request(raw)
  local not_reversible = '{"ok":false,"code":"NOT_REVERSIBLE","requestId":' .. q(of) .. ',"kind":"' .. original.kind .. '"}'
  local taken, order = {}, {}
  if original.kind == 'deduct' then
    local entries = cjson.decode(request_outcome(of, original)).entries
    for _, e in ipairs(entries) do
      if not taken[e.sku] then order[#order + 1] = e.sku end
      taken[e.sku] = (taken[e.sku] or 0) - e.onHandDelta
    end
    return taken, order, entries[1] and entries[1].buyer
  end
  if original.kind ~= 'reserve' then return nil, not_reversible end
  local r = reservation(d, of)
  if not r or r.state ~= 'committed' or not r.committed then return nil, not_reversible end
  for _, l in ipairs(r.committed) do
    if l.qty > 0 then
      taken[l.sku] = l.qty
      order[#order + 1] = l.sku
    end
  end
  return taken, order, r.buyer
end

OPS.reverse = function(a)
  local d, done, request_id, meta = begin(a, 'reverse')
  if done then return done end
  local of = a[5]
  local raw = redis.call('HGET', K_REQUESTS, of)
  if not raw then return reject(d, '{"ok":false,"code":"REQUEST_NOT_FOUND","requestId":' .. q(of) .. '}') end
  local taken, order, buyer = taken_by(d, of, raw)
  if not taken then return reject(d, order) end
  local function remaining(sku)
    return (taken[sku] or 0) - tonumber(redis.call('HGET', K_REVERSED, enc(of) .. sku) or '0')
  end
  local lines = read_lines(a, 6)
  if not lines then
    lines = {}
    for _, sku in ipairs(order) do
      local left = remaining(sku)
      if left > 0 then lines[#lines + 1] = { sku = sku, qty = left } end
    end
  end
  if #lines == 0 then
    local sku = order[1] or ''
    return reject(d, '{"ok":false,"code":"REVERSAL_EXCEEDS_ORIGINAL","sku":' .. q(sku) .. ',"requested":' .. fmt(taken[sku] or 0) ..
      ',"remaining":0}')
  end
  local skus = skus_of(lines)
  expire_due(d, skus)
  for _, l in ipairs(lines) do
    local left = remaining(l.sku)
    if l.qty > left then
      return reject(d, '{"ok":false,"code":"REVERSAL_EXCEEDS_ORIGINAL","sku":' .. q(l.sku) .. ',"requested":' .. fmt(l.qty) ..
        ',"remaining":' .. fmt(left) .. '}')
    end
    local c = counters(d, l.sku)
    if c.on + l.qty > QUANTITY_MAX then return reject(d, quantity_limit(l.sku, l.qty, c.on)) end
  end
  own(d)
  local deltas = {}
  for i, l in ipairs(lines) do deltas[i] = { l.sku, l.qty, 0 } end
  step(d, request_id, 'reverse', meta, deltas, buyer)
  d.reversal = { of = of, lines = lines }
  return apply(d, skus)
end
