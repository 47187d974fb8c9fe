--[[
  reserve: reserved += qty on every line, all or none, until expiresAt. The reservation's id is
  its requestId; it keeps the buyer, whose total its commit, release or expiry moves again.
  With anyOf lines, the allocation (lib.lua) decides which SKUs serve them: the reservation
  holds the merged lines taken, and the outcome shows the allocation ("allocations"). The
  common case takes plain_take (lib.lua), as a deduct does.
  Composed with: lib.lua, reserve.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", expiresAt, buyer or "" (none), n, then n
        pairs sku, qty (the one-SKU lines, merged, sorted by SKU; n may be 0 when there are anyOf
        lines), then the lines as given, as in deduct.lua
  Reply: "A"|"R" .. outcome JSON (with the reservation), "X" .. BUYER_LIMIT | INSUFFICIENT_STOCK |
         REQUEST_REVOKED JSON, "C" .. stored kind, or "B" .. a SKU with a buyerMax when no buyer was
         named (nothing written).
]]
OPS.reserve = function(a)
  local answered, d, request_id, meta = begin_take(a, 'reserve')
  if answered then return answered end
  local expires_at = tonumber(a[5])
  local buyer = opt(a[6])
  local lines, given = read_order_lines(a, 7)
  local taken, reply = taking(d, lines, given, buyer)
  if not taken then return reply end
  local skus = skus_of(taken)
  own(d)
  local deltas = {}
  for i, l in ipairs(taken) do deltas[i] = { l.sku, 0, l.qty } end
  step(d, request_id, 'reserve', meta, deltas, buyer)
  d.reservation = { id = request_id, state = 'held', lines = taken, expiresAt = expires_at, createdAt = d.at, meta = meta, holds = skus,
    buyer = buyer }
  return apply(d, skus)
end
