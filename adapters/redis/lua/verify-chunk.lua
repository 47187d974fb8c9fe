--[[
  verify-chunk: the next SKUs of the verify walk (byte order), each read atomically with
  everything its invariants compare: its stored level, the seq of its last entry (entries never
  change, so folding them up to that seq later compares exactly what was stored together), its
  stored buyer totals (from the buyersBySku index, each with its value in `buyers`), and its
  live holds from the hold index, each with what its reservation record says of it.
  Bounded: at most `limit` SKUs, and no SKU after the one whose buyer totals and holds bring the
  chunk to `rowsMax` of them (a SKU's are read whole: they are compared with its level and its
  entries as of one moment).
  With compaction, each SKU's checkpoint is read with the rest (its parts count as rows): a
  compaction step moves entries into it, so the fold of the entries kept is compared with the
  checkpoint of the same moment (verify-fold.lua checks that it did not move meanwhile).
  Composed with: lib.lua, verify-chunk.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: after (a SKU, or "" to start), limit, rowsMax, and optionally "1": `after` itself is
        included (to read one SKU again, whose checkpoint moved while its entries were folded)
  Reply: an array: "1" when SKUs after this chunk's last one may follow, "0" when the walk is
         done; then per SKU: sku, its level field as stored (any form, policy included, see
         lib.lua; "" when none), last entry seq (or "0"), the number b of its buyer totals, then
         per buyer 2 strings: buyer, its total as stored ("" when the index names a buyer that
         `buyers` lacks); then the number h of its holds, then per hold 7 strings:
         reservationId, qty, expiresAt, and from its record state (or "" when there is no
         record), expiresAt, the qty of this SKU in its lines (or "" when they do not name it),
         "1" or "0" (its holds list names the SKU); then the number c of its checkpoint's parts,
         then per part 3 strings: its tag ("c" counters, "h" a reservation's holds, "b" a
         buyer's total, see checkpoint.lua), its name (the reservation id or buyer, "" for
         "c") and its value as stored ("" when `checkpoints` lacks the indexed field).
]]

-- The qty of `sku` in a record's lines, or nil.
local function line_qty(r, sku)
  for _, l in ipairs(r.lines) do if l.sku == sku then return l.qty end end
  return nil
end

-- Appends the SKU's stored buyer totals to `out`; returns how many there were.
local function buyer_checks(sku, out)
  local prefix = enc(sku)
  local fields = redis.call('ZRANGEBYLEX', K_BUYERS_BY_SKU, '[' .. prefix, '(' .. prefix .. '\255')
  out[#out + 1] = fmt(#fields)
  if #fields == 0 then return 0 end
  -- HMGET in slices: unpack() has a bounded stack, and a SKU may have many buyers.
  for from = 1, #fields, 1000 do
    local slice = { unpack(fields, from, math.min(#fields, from + 999)) }
    local values = redis.call('HMGET', K_BUYERS, unpack(slice))
    for i, field in ipairs(slice) do
      out[#out + 1] = string.sub(field, #prefix + 1)
      out[#out + 1] = values[i] or ''
    end
  end
  return #fields
end

-- Appends the SKU's holds to `out`; returns how many there were.
local function hold_checks(sku, out, records)
  local prefix = enc(sku)
  local members = redis.call('ZRANGEBYLEX', K_HOLDS_BY_SKU, '[' .. prefix, '(' .. prefix .. '\255')
  out[#out + 1] = fmt(#members)
  for _, m in ipairs(members) do
    local id, rest = dec(m, #prefix + 17)
    local r = cached_reservation(records, id)
    out[#out + 1] = id
    out[#out + 1] = fmt(tonumber(string.sub(m, rest)))
    out[#out + 1] = fmt(tonumber(string.sub(m, #prefix + 1, #prefix + 16)))
    if r then
      local qty = line_qty(r, sku)
      out[#out + 1] = r.state
      out[#out + 1] = fmt(r.expiresAt)
      out[#out + 1] = qty and fmt(qty) or ''
      out[#out + 1] = holds_sku(r, sku) and '1' or '0'
    else
      for _ = 1, 4 do out[#out + 1] = '' end
    end
  end
  return #members
end

-- Appends the SKU's checkpoint parts to `out`; returns how many there were.
local function checkpoint_checks(sku, out)
  local prefix = enc(sku)
  local fields = redis.call('ZRANGEBYLEX', K_CP_BY_SKU, '[' .. prefix, '(' .. prefix .. '\255')
  out[#out + 1] = fmt(#fields)
  for from = 1, #fields, 1000 do
    local slice = { unpack(fields, from, math.min(#fields, from + 999)) }
    local values = redis.call('HMGET', K_CHECKPOINTS, unpack(slice))
    for i, field in ipairs(slice) do
      out[#out + 1] = string.sub(field, #prefix + 1, #prefix + 1)
      out[#out + 1] = string.sub(field, #prefix + 2)
      out[#out + 1] = values[i] or ''
    end
  end
  return #fields
end

OPS.verify_chunk = function(a)
  local min = a[1] == '' and '-' or ((a[4] == '1' and '[' or '(') .. a[1])
  local limit, rows_max = tonumber(a[2]), tonumber(a[3])
  -- One SKU more than the chunk takes: whether it exists tells if the walk goes on.
  local skus = redis.call('ZRANGEBYLEX', K_SKUS, min, '+', 'LIMIT', 0, limit + 1)
  local out, records, rows, taken = { '0' }, {}, 0, 0
  for k = 1, math.min(limit, #skus) do
    local sku = skus[k]
    local last = redis.call('ZRANGE', sku_index(sku), -1, -1)[1]
    out[#out + 1] = sku
    out[#out + 1] = redis.call('HGET', K_LEVELS, sku) or ''
    out[#out + 1] = last or '0'
    rows = rows + buyer_checks(sku, out)
    rows = rows + hold_checks(sku, out, records)
    rows = rows + checkpoint_checks(sku, out)
    taken = k
    if rows >= rows_max then break end
  end
  if taken < #skus then out[1] = '1' end
  return out
end
