--[[
  adjust: sets onHand of one SKU (a stocktake); the entry records the delta.
  Composed with: lib.lua, adjust.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the twelve ledger keys (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", sku, onHand, expectedVersion or ""
  Reply: "A"|"R" .. outcome JSON, "X" .. VERSION_CONFLICT | QUANTITY_LIMIT | BELOW_RESERVED |
         REQUEST_REVOKED JSON, or "C" .. stored kind.
]]
OPS.adjust = function(a)
  local d, done, request_id, meta = begin(a, 'adjust')
  if done then return done end
  local sku, on_hand, expected = a[5], tonumber(a[6]), opt(a[7])
  expire_due(d, { sku })
  local c = counters(d, sku)
  if expected and tonumber(expected) ~= c.ver then
    return reject(d, '{"ok":false,"code":"VERSION_CONFLICT","sku":' .. q(sku) .. ',"expectedVersion":' .. fmt(tonumber(expected)) ..
      ',"level":' .. level_json(sku, c) .. '}')
  end
  if on_hand > QUANTITY_MAX then return reject(d, quantity_limit(sku, on_hand, c.on)) end
  -- On hand may go below reserved by up to the backorder allowance (the core's adjust).
  if on_hand - c.res + c.bo < 0 then
    return reject(d, '{"ok":false,"code":"BELOW_RESERVED","sku":' .. q(sku) .. ',"requested":' .. fmt(on_hand) .. ',"level":' ..
      level_json(sku, c) .. '}')
  end
  own(d)
  step(d, request_id, 'adjust', meta, { { sku, on_hand - c.on, 0 } })
  return apply(d, { sku })
end
