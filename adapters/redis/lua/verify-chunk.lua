--[[
  verify-chunk: the next SKUs of the verify walk (byte order), each with its stored level and
  the seq of its last entry, read atomically: entries never change, so folding them up to that
  seq later compares exactly what was stored together.
  KEYS: the ten ledger keys (lib.lua).
  ARGV: after (a SKU, or "" to start), limit
  Reply: an array of triples: sku, "onHand,reserved,version" (or ""), last entry seq (or "0").
]]
OPS.verify_chunk = function(a)
  local min = a[1] == '' and '-' or '(' .. a[1]
  local out = {}
  for _, sku in ipairs(redis.call('ZRANGEBYLEX', K_SKUS, min, '+', 'LIMIT', 0, tonumber(a[2]))) do
    local prefix = enc(sku)
    local last = redis.call('ZREVRANGEBYLEX', K_BY_SKU, '(' .. prefix .. '\255', '[' .. prefix, 'LIMIT', 0, 1)[1]
    out[#out + 1] = sku
    out[#out + 1] = redis.call('HGET', K_LEVELS, sku) or ''
    out[#out + 1] = last and string.sub(last, #prefix + 1) or '0'
  end
  return out
end
