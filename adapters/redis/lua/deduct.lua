--[[
  deduct: onHand -= qty on every line, all or none. With anyOf lines, the allocation (lib.lua)
  decides which SKUs serve them; the outcome then shows it ("allocations").
  Composed with: lib.lua, deduct.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", buyer or "" (none), n, then n pairs sku, qty
        (the one-SKU lines, merged, sorted by SKU; n may be 0 when there are anyOf lines), then
        the lines as given: g (0: no anyOf line, nothing follows), m, the m SKUs they name (sorted
        as JavaScript sorts), then g lines, each "sku", sku, qty or "anyOf", qty, split "1"|"0",
        prefer "order"|"mostAvailable", k, k SKUs (see lib.lua)
  Reply: "a" .. first seq and level fields (taken_tail in lib.lua), or with anyOf lines "A" ..
         outcome JSON; "R" .. outcome JSON, "X" .. BUYER_LIMIT | INSUFFICIENT_STOCK (with "line" and "anyOf"
         for an anyOf line) | REQUEST_REVOKED JSON, "C" .. stored kind, or "B" .. a SKU with a
         buyerMax when no buyer was named (nothing written).
  A sold-out SKU with no due hold is rejected without a write. The common case (one-SKU lines,
  no buyer, no unit reserved, no buyerMax) takes plain_take (lib.lua), which decides as the
  general path.
]]

OPS.deduct = function(a)
  local answered, d, request_id, meta = begin_take(a, 'deduct')
  if answered then return answered end
  local buyer = opt(a[5])
  local lines, given = read_order_lines(a, 6)
  local taken, reply = taking(d, lines, given, buyer)
  if not taken then return reply end
  own(d)
  local deltas = {}
  for i, l in ipairs(taken) do deltas[i] = { l.sku, -l.qty, 0 } end
  step(d, request_id, 'deduct', meta, deltas, buyer)
  return apply(d, skus_of(taken))
end
