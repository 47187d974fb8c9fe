--[[
  read-holds: a page of a SKU's live holds (expiresAt > now), soonest first, then by
  reservation id (enc() keeps byte order, so code-point order), with each reservation's meta and
  buyer.
  Composed with: lib.lua, read-holds.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: sku, now, after expiresAt ("" for the first page), after reservation id, limit
  Reply: a flat array: reservationId, qty, expiresAt, meta JSON or "", buyer or "" (none), for
         each hold.
]]
OPS.holds = function(a)
  local prefix = enc(a[1])
  local now, limit = tonumber(a[2]), tonumber(a[5])
  local start = '[' .. prefix .. pad16(now + 1)
  if a[3] ~= '' and tonumber(a[3]) > now then
    -- Past every member of the cursor's hold: its qty digits all sort below 0xFF.
    start = '(' .. prefix .. pad16(tonumber(a[3])) .. enc(a[4]) .. '\255'
  end
  local members = redis.call('ZRANGEBYLEX', K_HOLDS_BY_SKU, start, '(' .. prefix .. '\255', 'LIMIT', 0, limit)
  local out = {}
  for _, m in ipairs(members) do
    local expires_at = string.sub(m, #prefix + 1, #prefix + 16)
    local id, rest = dec(m, #prefix + 17)
    local raw = redis.call('HGET', K_RESERVATIONS, id)
    local r = raw and cjson.decode(raw) or {}
    out[#out + 1] = id
    out[#out + 1] = string.sub(m, rest)
    out[#out + 1] = expires_at
    out[#out + 1] = type(r.meta) == 'string' and r.meta or ''
    out[#out + 1] = type(r.buyer) == 'string' and r.buyer or ''
  end
  return out
end
