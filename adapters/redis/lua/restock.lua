--[[
  restock: onHand += qty of one SKU.
  Composed with: lib.lua, restock.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the twelve ledger keys (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", sku, qty
  Reply: "A"|"R" .. outcome JSON, "X" .. QUANTITY_LIMIT | REQUEST_REVOKED JSON, or "C" .. stored kind.
]]
OPS.restock = function(a)
  local d, done, request_id, meta = begin(a, 'restock')
  if done then return done end
  local sku, qty = a[5], tonumber(a[6])
  expire_due(d, { sku })
  local c = counters(d, sku)
  if c.on + qty > QUANTITY_MAX then return reject(d, quantity_limit(sku, qty, c.on)) end
  own(d)
  step(d, request_id, 'restock', meta, { { sku, qty, 0 } })
  return apply(d, { sku })
end
