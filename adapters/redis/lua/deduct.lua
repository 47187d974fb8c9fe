--[[
  deduct: onHand -= qty on every line, all or none. With anyOf lines, the allocation (lib.lua)
  decides which SKUs serve them; the outcome then shows it ("allocations").
  Composed with: lib.lua, deduct.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the twelve ledger keys (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", buyer or "" (none), n, then n pairs sku, qty
        (the one-SKU lines, merged, sorted by SKU; n may be 0 when there are anyOf lines), then
        the lines as given: g (0: no anyOf line, nothing follows), m, the m SKUs they name (sorted
        as JavaScript sorts), then g lines, each "sku", sku, qty or "anyOf", qty, split "1"|"0",
        prefer "order"|"mostAvailable", k, k SKUs (see lib.lua)
  Reply: "A"|"R" .. outcome JSON, "X" .. BUYER_LIMIT | INSUFFICIENT_STOCK (with "line" and "anyOf"
         for an anyOf line) | REQUEST_REVOKED JSON, "C" .. stored kind, or "B" .. a SKU with a
         buyerMax when no buyer was named (nothing written).
  A sold-out SKU with no due hold is rejected without a write. The common case (one-SKU lines,
  no buyer, no unit reserved, no buyerMax) takes plain_deduct, which decides as the general path.
]]

--[[
  The common deduct, without the draft: one-SKU lines only (no anyOf line), no buyer, and every
  line's SKU has a level, no unit reserved (so no hold of it can be due) and no buyerMax (which
  wants a buyer). For such a deduct the general path below checks nothing else: no buyer is
  missing, no due hold expires, no buyer limit applies; so this decides as it does, with the same
  checks (insufficient, check_after) in the same order, and writes the same keys in the same
  order with the same encoders (entry_json, level_field, level_json, applied_json,
  request_record). Anything else returns nil, and the counters it read, which no write changed,
  seed the general path's draft. A rejection writes nothing, as there: no due expiry to write.
]]
local function plain_deduct(a)
  if a[5] ~= '' then return nil end
  local n = tonumber(a[6])
  if n < 1 or a[7 + 2 * n] ~= '0' then return nil end
  local lines, cache = {}, {}
  for j = 1, n do
    local sku = a[5 + 2 * j]
    -- Lines come merged (one per SKU); a caller that sent a SKU twice gets the general path.
    if cache[sku] then return nil, cache end
    local c = read_counters(sku)
    if not c then return nil, cache end
    cache[sku] = c
    if c.res ~= 0 or c.bm ~= nil then return nil, cache end
    lines[j] = { sku = sku, qty = tonumber(a[6 + 2 * j]) }
  end
  local refusal = insufficient(lines, { cache = cache }, nil)
  if refusal then return 'X' .. refusal end
  local request_id, at, meta = a[1], tonumber(a[3]), opt(a[4])
  local s = { request_id = request_id, kind = 'deduct', meta = meta }
  local afters = {}
  for j, l in ipairs(lines) do
    local before = cache[l.sku]
    local after = { on = before.on - l.qty, res = before.res, ver = before.ver + 1, bo = before.bo, ls = before.ls, bm = before.bm }
    check_after(l.sku, after)
    afters[j] = after
  end
  local seq = write('INCRBY', K_SEQ, n) - n + 1
  local entries, levels = {}, {}
  for j, l in ipairs(lines) do
    local e = entry_json(seq, s, { sku = l.sku, on_delta = -l.qty, res_delta = 0, after = afters[j] }, at)
    write('HSET', K_ENTRIES, fmt(seq), e)
    index_entry(l.sku, seq)
    entries[j] = e
    seq = seq + 1
  end
  for j, l in ipairs(lines) do
    write('HSET', K_LEVELS, l.sku, level_field(afters[j]))
    levels[j] = level_json(l.sku, afters[j])
  end
  local outcome = applied_json(entries, levels) .. '}'
  write('HSET', K_REQUESTS, request_id, request_record('deduct', at, a[2], outcome))
  return 'A' .. outcome
end

OPS.deduct = function(a)
  local done = recorded(a[1], a[2], 'deduct')
  if done then return done end
  local reply, seen = plain_deduct(a)
  if reply then return reply end
  local d, _, request_id, meta = draft_of(a, 'deduct')
  if seen then
    for sku, c in pairs(seen) do d.cache[sku] = c end
  end
  local buyer = opt(a[5])
  local lines, given = read_order_lines(a, 6)
  local taken, reply = taking(d, lines, given, buyer)
  if not taken then return reply end
  own(d)
  local deltas = {}
  for i, l in ipairs(taken) do deltas[i] = { l.sku, -l.qty, 0 } end
  step(d, request_id, 'deduct', meta, deltas, buyer)
  return apply(d, skus_of(taken))
end
