--[[
  verify-fold: sums a bounded page of one SKU's entries, after < seq <= upto: the counters, and
  per reservation the reservedDelta of its entries (reserve, commit, release, expire) on the SKU.
  Composed with: lib.lua, verify-fold.lua (scripts/embed-lua.mjs).
  KEYS: the ten ledger keys (lib.lua).
  ARGV: sku, after, upto, limit
  Reply: an array: "onHandSum,reservedSum,count,lastSeq" (lastSeq = after when the page is
         empty), then pairs reservationId, its reservedDelta sum on this page (non-zero only).
]]
OPS.fold = function(a)
  local sku, after, upto, limit = a[1], tonumber(a[2]), tonumber(a[3]), tonumber(a[4])
  local prefix = enc(sku)
  local members = redis.call('ZRANGEBYLEX', K_BY_SKU, '(' .. prefix .. pad16(after), '[' .. prefix .. pad16(upto), 'LIMIT', 0, limit)
  if #members == 0 then return { '0,0,0,' .. fmt(after) } end
  local seqs = {}
  for i, m in ipairs(members) do seqs[i] = tonumber(string.sub(m, #prefix + 1)) end
  local on, res, count = 0, 0, 0
  local held, order = {}, {}
  for _, e in ipairs(redis.call('HMGET', K_ENTRIES, unpack(seqs))) do
    -- A missing entry is not counted: the version then differs, and verify reports the drift.
    if e then
      local x = cjson.decode(e)
      on, res, count = on + x.onHandDelta, res + x.reservedDelta, count + 1
      if x.reservedDelta ~= 0 then
        if not held[x.requestId] then order[#order + 1] = x.requestId end
        held[x.requestId] = (held[x.requestId] or 0) + x.reservedDelta
      end
    end
  end
  local out = { fmt(on) .. ',' .. fmt(res) .. ',' .. fmt(count) .. ',' .. fmt(seqs[#seqs]) }
  for _, id in ipairs(order) do
    if held[id] ~= 0 then
      out[#out + 1] = id
      out[#out + 1] = fmt(held[id])
    end
  end
  return out
end
