--[[
  deduct: onHand -= qty on every line, all or none.
  Composed with: lib.lua, deduct.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ten ledger keys (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", n, then n pairs sku, qty (merged, sorted by SKU)
  Reply: "A"|"R" .. outcome JSON, "X" .. INSUFFICIENT_STOCK | REQUEST_REVOKED JSON, or "C" .. stored kind.
  A sold-out SKU with no due hold is rejected without a write.
]]
OPS.deduct = function(a)
  local d, done, request_id, meta = begin(a, 'deduct')
  if done then return done end
  local lines = read_lines(a, 5)
  local skus = skus_of(lines)
  expire_due(d, skus)
  local short = insufficient(lines, d)
  if short then return reject(d, short) end
  own(d)
  local deltas = {}
  for i, l in ipairs(lines) do deltas[i] = { l.sku, -l.qty, 0 } end
  step(d, request_id, 'deduct', meta, deltas)
  return apply(d, skus)
end
