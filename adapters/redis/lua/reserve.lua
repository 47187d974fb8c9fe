--[[
  reserve: reserved += qty on every line, all or none, until expiresAt. The reservation's id is
  its requestId; it keeps the buyer, whose total its commit, release or expiry moves again.
  Composed with: lib.lua, reserve.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the twelve ledger keys (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", expiresAt, buyer or "" (none), n, then n
        pairs sku, qty (merged, sorted by SKU)
  Reply: "A"|"R" .. outcome JSON (with the reservation), "X" .. BUYER_LIMIT | INSUFFICIENT_STOCK |
         REQUEST_REVOKED JSON, "C" .. stored kind, or "B" .. a SKU with a buyerMax when no buyer was
         named (nothing written).
]]
OPS.reserve = function(a)
  local d, done, request_id, meta = begin(a, 'reserve')
  if done then return done end
  local expires_at = tonumber(a[5])
  local buyer = opt(a[6])
  local lines = read_lines(a, 7)
  local missing = buyer_missing(lines, buyer, d)
  if missing then return 'B' .. missing end
  local skus = skus_of(lines)
  expire_due(d, skus)
  local refusal = buyer_limit(lines, buyer, d) or insufficient(lines, d)
  if refusal then return reject(d, refusal) end
  own(d)
  local deltas = {}
  for i, l in ipairs(lines) do deltas[i] = { l.sku, 0, l.qty } end
  step(d, request_id, 'reserve', meta, deltas, buyer)
  d.reservation = { id = request_id, state = 'held', lines = lines, expiresAt = expires_at, createdAt = d.at, meta = meta, holds = skus,
    buyer = buyer }
  return apply(d, skus)
end
