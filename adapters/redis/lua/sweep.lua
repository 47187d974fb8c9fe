--[[
  sweep: expires up to `limit` due holds anywhere in the ledger, soonest first. The holds it
  may touch cannot be named up front, so they live in fields of the ledger's own keys.
  Composed with: lib.lua, sweep.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: limit, at
  Reply: "A" .. outcome JSON with every entry, "expired" and "more".
]]
OPS.sweep = function(a)
  local limit = tonumber(a[1])
  local d = new_draft(tonumber(a[2]))
  local due = redis.call('ZRANGEBYSCORE', K_HOLDS_DUE, '-inf', d.at, 'LIMIT', 0, limit + 1)
  for i = 1, math.min(limit, #due) do
    local id, rest = dec(due[i], 1)
    local r = reservation(d, id)
    if r then expire_hold(d, r, string.sub(due[i], rest)) end
  end
  d.sweep = { more = #due > limit }
  local skus, seen = {}, {}
  for _, s in ipairs(d.steps) do
    for _, c in ipairs(s.changes) do
      if not seen[c.sku] then seen[c.sku] = true; skus[#skus + 1] = c.sku end
    end
  end
  return apply(d, skus)
end
