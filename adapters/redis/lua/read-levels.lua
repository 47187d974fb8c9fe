--[[
  read-levels: a page of the SKUs that have a level, in byte order (the `skus` index the verify
  walk reads too), after `after`, each with what read-stocks.lua gives for it as of `now`.
  Composed with: lib.lua, read-stocks.lua, read-levels.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: after (a SKU, or "" to start), limit, now
  Reply: an array of at most `limit` pairs: sku, its stock string as read-stocks.lua replies it.
]]
OPS.levels = function(a)
  local min = a[1] == '' and '-' or '(' .. a[1]
  local now = tonumber(a[3])
  local out = {}
  for _, sku in ipairs(redis.call('ZRANGEBYLEX', K_SKUS, min, '+', 'LIMIT', 0, tonumber(a[2]))) do
    out[#out + 1] = sku
    out[#out + 1] = stock_of(sku, now)
  end
  return out
end
