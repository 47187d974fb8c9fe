--[[
  reserve: reserved += qty on every line, all or none, until expiresAt. The reservation's id is
  its requestId.
  Composed with: lib.lua, reserve.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ten ledger keys (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", expiresAt, n, then n pairs sku, qty
  Reply: "A"|"R" .. outcome JSON (with the reservation), "X" .. INSUFFICIENT_STOCK | REQUEST_REVOKED JSON, or
         "C" .. stored kind.
]]
OPS.reserve = function(a)
  local d, done, request_id, meta = begin(a, 'reserve')
  if done then return done end
  local expires_at = tonumber(a[5])
  local lines = read_lines(a, 6)
  local skus = skus_of(lines)
  expire_due(d, skus)
  local short = insufficient(lines, d)
  if short then return reject(d, short) end
  own(d)
  local deltas = {}
  for i, l in ipairs(lines) do deltas[i] = { l.sku, 0, l.qty } end
  step(d, request_id, 'reserve', meta, deltas)
  d.reservation = { id = request_id, state = 'held', lines = lines, expiresAt = expires_at, createdAt = d.at, meta = meta, holds = skus }
  return apply(d, skus)
end
