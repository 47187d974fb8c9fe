--[[
  read-buyers: what one buyer holds plus has bought of each SKU, as of `now`: the stored total
  less the qty of that buyer's holds of the SKU that are due (expiresAt <= now) and not yet
  expired in storage (reads count due holds as expired).
  Composed with: lib.lua, read-buyers.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: now, buyer, then one or more SKUs
  Reply: an array, one integer string per SKU, in the order given.
]]

-- The qty of the buyer's due holds of a SKU. Only holds of that buyer count, so only when the
-- buyer's stored total is not 0 can there be one (a hold is part of the total).
local function due_of_buyer(sku, buyer, now)
  local prefix = enc(sku)
  local qty = 0
  for _, m in ipairs(redis.call('ZRANGEBYLEX', K_HOLDS_BY_SKU, '[' .. prefix, '(' .. prefix .. pad16(now + 1))) do
    local id, rest = dec(m, #prefix + 17)
    local raw = redis.call('HGET', K_RESERVATIONS, id)
    if raw and cjson.decode(raw).buyer == buyer then qty = qty + tonumber(string.sub(m, rest)) end
  end
  return qty
end

OPS.buyer_totals = function(a)
  local now, buyer = tonumber(a[1]), a[2]
  local out = {}
  for i = 3, #a do
    local sku = a[i]
    local taken = tonumber(redis.call('HGET', K_BUYERS, buyer_field(sku, buyer)) or '0')
    if taken ~= 0 then taken = taken - due_of_buyer(sku, buyer, now) end
    out[#out + 1] = fmt(taken)
  end
  return out
end
