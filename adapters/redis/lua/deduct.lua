--[[
  deduct: onHand -= qty on every line, all or none.
  Composed with: lib.lua, deduct.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the twelve ledger keys (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", buyer or "" (none), n, then n pairs sku, qty
        (merged, sorted by SKU)
  Reply: "A"|"R" .. outcome JSON, "X" .. BUYER_LIMIT | INSUFFICIENT_STOCK | REQUEST_REVOKED JSON,
         "C" .. stored kind, or "B" .. a SKU with a buyerMax when no buyer was named (nothing written).
  A sold-out SKU with no due hold is rejected without a write.
]]
OPS.deduct = function(a)
  local d, done, request_id, meta = begin(a, 'deduct')
  if done then return done end
  local buyer = opt(a[5])
  local lines = read_lines(a, 6)
  local missing = buyer_missing(lines, buyer, d)
  if missing then return 'B' .. missing end
  local skus = skus_of(lines)
  expire_due(d, skus)
  local refusal = buyer_limit(lines, buyer, d) or insufficient(lines, d)
  if refusal then return reject(d, refusal) end
  own(d)
  local deltas = {}
  for i, l in ipairs(lines) do deltas[i] = { l.sku, -l.qty, 0 } end
  step(d, request_id, 'deduct', meta, deltas, buyer)
  return apply(d, skus)
end
