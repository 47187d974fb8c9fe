--[[
  restock: onHand += qty on every line (one SKU, or a purchase order), all or none.
  Composed with: lib.lua, restock.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", n (1 or more), then n pairs sku, qty
        (merged, sorted by SKU as JavaScript sorts)
  Reply: "A"|"R" .. outcome JSON, "X" .. QUANTITY_LIMIT (the first line in SKU order past the
         limit) | REQUEST_REVOKED JSON, or "C" .. stored kind.
]]
OPS.restock = function(a)
  local d, done, request_id, meta = begin(a, 'restock')
  if done then return done end
  local lines = read_lines(a, 5)
  local skus = skus_of(lines)
  -- Due holds of every SKU expire first, then every line is checked before the first write.
  expire_due(d, skus)
  for _, l in ipairs(lines) do
    local c = counters(d, l.sku)
    if c.on + l.qty > QUANTITY_MAX then return reject(d, quantity_limit(l.sku, l.qty, c.on)) end
  end
  own(d)
  local deltas = {}
  for i, l in ipairs(lines) do deltas[i] = { l.sku, l.qty, 0 } end
  step(d, request_id, 'restock', meta, deltas)
  return apply(d, skus)
end
