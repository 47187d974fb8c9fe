--[[
  verify-fold: sums a bounded page of one SKU's entries, after < seq <= upto.
  KEYS: the ten ledger keys (lib.lua).
  ARGV: sku, after, upto, limit
  Reply: "onHandSum,reservedSum,count,lastSeq" (lastSeq = after when the page is empty).
]]
OPS.fold = function(a)
  local sku, after, upto, limit = a[1], tonumber(a[2]), tonumber(a[3]), tonumber(a[4])
  local prefix = enc(sku)
  local members = redis.call('ZRANGEBYLEX', K_BY_SKU, '(' .. prefix .. pad16(after), '[' .. prefix .. pad16(upto), 'LIMIT', 0, limit)
  local on, res, count, last = 0, 0, 0, after
  if #members == 0 then return '0,0,0,' .. fmt(after) end
  local seqs = {}
  for i, m in ipairs(members) do seqs[i] = tonumber(string.sub(m, #prefix + 1)) end
  for _, e in ipairs(redis.call('HMGET', K_ENTRIES, unpack(seqs))) do
    -- A missing entry is not counted: the version then differs, and verify reports the drift.
    if e then
      local x = cjson.decode(e)
      on, res, count = on + x.onHandDelta, res + x.reservedDelta, count + 1
    end
  end
  last = seqs[#seqs]
  return fmt(on) .. ',' .. fmt(res) .. ',' .. fmt(count) .. ',' .. fmt(last)
end
