--[[
  layout: brings the ledger's keys to the layout this version writes (3), a bounded step at a
  time, or says that it cannot. The store runs it before its first call of anything else.
  Composed with: lib.lua, layout.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: limit (index members moved per call)
  Reply: "OK" (the ledger is in layout 3), "M" .. n (moved n members of layout 1's bySku set into
         the per-SKU indexes: call again), or "V" .. version (a layout this version does not know,
         written by a newer one: nothing changed).
  Layout 1 (no layout key) kept every SKU's entry index in one sorted set under bySku, members
  (score 0) enc(sku) .. pad16(seq); layout 2 gives each SKU its own (sku_index in lib.lua).
  Layout 3 keeps a deduct's outcome once (its request record names its entries, taken_tail in
  lib.lua); records written whole by layouts 1 and 2 read as they are, so layout 2 becomes 3 by
  its stamp alone, and layout 1 by its index moved, then the stamp. A store of layout 2 would
  misread the new records: the stamp makes it refuse the ledger. A ledger with no entry yet
  (no seq) is in every layout: "OK", and nothing is written (a read of a new ledger writes
  nothing); the first store to open it once it has entries stamps it.
]]
local LAYOUT = '3'

-- Moves up to `limit` members of layout 1's index into the per-SKU indexes; returns how many.
local function move_index(limit)
  local members = redis.call('ZRANGE', K_BY_SKU, 0, limit - 1)
  for _, m in ipairs(members) do
    local sku, i = dec(m, 1)
    local seq = tonumber(string.sub(m, i))
    if not seq or #m - i + 1 ~= 16 then invariant('layout 1 index member ' .. q(m) .. ' is not a SKU and a 16-digit seq') end
    index_entry(sku, fmt(seq))
  end
  if #members > 0 then write('ZREM', K_BY_SKU, unpack(members)) end
  return #members
end

OPS.layout = function(a)
  local version = redis.call('GET', K_LAYOUT)
  if version == LAYOUT then return 'OK' end
  if version == '2' then
    write('SET', K_LAYOUT, LAYOUT)
    return 'OK'
  end
  if version then return 'V' .. version end
  if redis.call('EXISTS', K_SEQ) == 0 then return 'OK' end
  local kind = redis.call('TYPE', K_BY_SKU).ok
  if kind ~= 'none' and kind ~= 'zset' then invariant('bySku holds a ' .. kind .. ', not a layout 1 index') end
  if kind == 'zset' then
    local moved = move_index(tonumber(a[1]))
    if redis.call('EXISTS', K_BY_SKU) == 1 then return 'M' .. fmt(moved) end
  end
  write('SET', K_LAYOUT, LAYOUT)
  return 'OK'
end
