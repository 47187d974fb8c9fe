--[[
  adjust: sets onHand of every line's SKU (one SKU, or a stocktake), all or none; one entry per
  line records its delta, even a zero one.
  Composed with: lib.lua, adjust.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", n (1 or more), then n triples sku, onHand,
        expectedVersion or "" (each SKU once, sorted by SKU as JavaScript sorts)
  Reply: "A"|"R" .. outcome JSON, "X" .. VERSION_CONFLICT | QUANTITY_LIMIT | BELOW_RESERVED
         (the first line in SKU order that fails) | REQUEST_REVOKED JSON, or "C" .. stored kind.
]]

-- Why one count cannot apply to a SKU with counters c (the core's countRefused), or nil.
local function count_refused(l, c)
  if l.expected and l.expected ~= c.ver then
    return '{"ok":false,"code":"VERSION_CONFLICT","sku":' .. q(l.sku) .. ',"expectedVersion":' .. fmt(l.expected) ..
      ',"level":' .. level_json(l.sku, c) .. '}'
  end
  if l.on_hand > QUANTITY_MAX then return quantity_limit(l.sku, l.on_hand, c.on) end
  -- On hand may go below reserved by up to the backorder allowance (the core's adjust).
  if l.on_hand - c.res + c.bo < 0 then
    return '{"ok":false,"code":"BELOW_RESERVED","sku":' .. q(l.sku) .. ',"requested":' .. fmt(l.on_hand) .. ',"level":' ..
      level_json(l.sku, c) .. '}'
  end
  return nil
end

OPS.adjust = function(a)
  local d, done, request_id, meta = begin(a, 'adjust')
  if done then return done end
  local n = tonumber(a[5])
  local lines, skus = {}, {}
  for j = 1, n do
    local at = 5 + 3 * (j - 1)
    local expected = opt(a[at + 3])
    lines[j] = { sku = a[at + 1], on_hand = tonumber(a[at + 2]), expected = expected and tonumber(expected) }
    skus[j] = lines[j].sku
  end
  -- Due holds of every SKU expire first, then every line is checked before the first write.
  expire_due(d, skus)
  for _, l in ipairs(lines) do
    local refused = count_refused(l, counters(d, l.sku))
    if refused then return reject(d, refused) end
  end
  -- Each SKU once: a line's delta is against its counters before any line is written.
  local deltas = {}
  for i, l in ipairs(lines) do deltas[i] = { l.sku, l.on_hand - counters(d, l.sku).on, 0 } end
  own(d)
  step(d, request_id, 'adjust', meta, deltas)
  return apply(d, skus)
end
