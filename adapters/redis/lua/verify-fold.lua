--[[
  verify-fold: sums a bounded page of one SKU's entries, after < seq <= upto: the counters, per
  reservation the reservedDelta of its entries (reserve, commit, release, expire, which carry its
  id as their requestId, and amend, which carry it as their reservationId) on the SKU,
  per buyer the reservedDelta - onHandDelta of the entries that name it, and how many entries
  each (kind, requestId) has on the page (the store sums the pages).
  The page is read only while the SKU's checkpoint version is the one the verify chunk read:
  else compaction removed some of the SKU's entries since, and the page would miss them.
  Composed with: lib.lua, checkpoint.lua, verify-fold.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: sku, after, upto, limit, the checkpoint version read with the chunk ("0" for none)
  Reply: { "moved" } when the SKU's checkpoint version is another one (nothing summed); else an array: "onHandSum,reservedSum,count,lastSeq" (lastSeq = after when the page is
         empty); h; h pairs reservationId, its reservedDelta sum on this page (non-zero only);
         b; b pairs buyer, its reservedDelta - onHandDelta sum on this page (non-zero only);
         then triples kind, requestId, its number of entries on this page.
]]
-- Counts an entry under its kind, then its request id: nested, so no two pairs share a key.
local function count_pair(seen, order, kind, id)
  local of_kind = seen[kind]
  if not of_kind then
    of_kind = {}
    seen[kind] = of_kind
  end
  if not of_kind[id] then order[#order + 1] = { kind, id } end
  of_kind[id] = (of_kind[id] or 0) + 1
end

-- Appends how many non-zero sums follow, then each as key, sum (in the order first met).
local function append_sums(out, order, sums)
  local at = #out + 1
  out[at] = ''
  for _, key in ipairs(order) do
    if sums[key] ~= 0 then
      out[#out + 1] = key
      out[#out + 1] = fmt(sums[key])
    end
  end
  out[at] = fmt((#out - at) / 2)
end

OPS.fold = function(a)
  local sku, after, upto, limit = a[1], tonumber(a[2]), tonumber(a[3]), tonumber(a[4])
  if cp_counters(sku).ver ~= tonumber(a[5]) then return { 'moved' } end
  local seqs = redis.call('ZRANGEBYSCORE', sku_index(sku), '(' .. fmt(after), fmt(upto), 'LIMIT', 0, limit)
  if #seqs == 0 then return { '0,0,0,' .. fmt(after), '0', '0' } end
  local on, res, count = 0, 0, 0
  local held, held_order, seen, seen_order, bought, bought_order = {}, {}, {}, {}, {}, {}
  for _, e in ipairs(redis.call('HMGET', K_ENTRIES, unpack(seqs))) do
    -- A missing entry is not counted: the version then differs, and verify reports the drift.
    if e then
      local x = cjson.decode(e)
      on, res, count = on + x.onHandDelta, res + x.reservedDelta, count + 1
      if x.reservedDelta ~= 0 then
        -- An amend entry's requestId is the amend's own: the hold it moves is its reservationId's.
        local holder = type(x.reservationId) == 'string' and x.reservationId or x.requestId
        if not held[holder] then held_order[#held_order + 1] = holder end
        held[holder] = (held[holder] or 0) + x.reservedDelta
      end
      if type(x.buyer) == 'string' then
        if not bought[x.buyer] then bought_order[#bought_order + 1] = x.buyer end
        bought[x.buyer] = (bought[x.buyer] or 0) + x.reservedDelta - x.onHandDelta
      end
      count_pair(seen, seen_order, x.kind, x.requestId)
    end
  end
  local out = { fmt(on) .. ',' .. fmt(res) .. ',' .. fmt(count) .. ',' .. fmt(seqs[#seqs]) }
  append_sums(out, held_order, held)
  append_sums(out, bought_order, bought)
  for _, p in ipairs(seen_order) do
    out[#out + 1] = p[1]
    out[#out + 1] = p[2]
    out[#out + 1] = fmt(seen[p[1]][p[2]])
  end
  return out
end
