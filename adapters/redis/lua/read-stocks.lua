--[[
  read-stocks: stored counters of SKUs, with the holds due at `now` (not yet expired in storage).
  Composed with: lib.lua, read-stocks.lua (scripts/embed-lua.mjs); the levels script reuses
  `stock_of` (read-levels.lua).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: now, then one or more SKUs
  Reply: an array, one string per SKU: "onHand,reserved,version,dueQty,dueCount", followed by
         ",backorderMax,lowStockAt" (lowStockAt "" for none) when the SKU's policy is not the default,
         and then ",buyerMax" when it has one.
]]

-- One SKU's stored counters and its holds due at `now`, as the reply above gives them.
local function stock_of(sku, now)
  local c = read_counters(sku) or zero_counters()
  local qty, count = 0, 0
  if c.res > 0 then
    local prefix = enc(sku)
    for _, m in ipairs(redis.call('ZRANGEBYLEX', K_HOLDS_BY_SKU, '[' .. prefix, '(' .. prefix .. pad16(now + 1))) do
      local _, rest = dec(m, #prefix + 17)
      qty = qty + tonumber(string.sub(m, rest))
      count = count + 1
    end
  end
  return fmt(c.on) .. ',' .. fmt(c.res) .. ',' .. fmt(c.ver) .. ',' .. fmt(qty) .. ',' .. fmt(count) .. policy_field(c)
end

OPS.stocks = function(a)
  local now = tonumber(a[1])
  local out = {}
  for i = 2, #a do out[#out + 1] = stock_of(a[i], now) end
  return out
end
