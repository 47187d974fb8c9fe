--[[
  read-entries: a page of entries with seq > after, of the whole ledger or of one SKU.
  Composed with: lib.lua, read-entries.lua (scripts/embed-lua.mjs).
  Only what compaction kept: a page of the whole ledger starts after the horizon at the
  earliest (the store tells a cursor below it by the horizon, read after the page).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: after, sku or "" (every SKU), limit (at most 1000)
  Reply: an array of entry JSON strings, in seq order.
]]
OPS.entries = function(a)
  local after, sku, limit = tonumber(a[1]), opt(a[2]), tonumber(a[3])
  local seqs = {}
  if sku then
    seqs = redis.call('ZRANGEBYSCORE', sku_index(sku), '(' .. fmt(after), '+inf', 'LIMIT', 0, limit)
  else
    local last = tonumber(redis.call('GET', K_SEQ) or '0')
    after = math.max(after, tonumber(redis.call('GET', K_HORIZON) or '0'))
    for s = after + 1, math.min(last, after + limit) do seqs[#seqs + 1] = s end
  end
  if #seqs == 0 then return {} end
  return redis.call('HMGET', K_ENTRIES, unpack(seqs))
end
