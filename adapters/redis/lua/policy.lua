--[[
  policy: sets one SKU's policy (backorderMax, lowStockAt, buyerMax): one entry of kind "policy"
  with zero deltas and the whole new policy on it; the version grows by one. A new buyerMax
  binds new takes only: what buyers hold or bought stays.
  Composed with: lib.lua, policy.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or "", sku, backorderMax or "keep",
        lowStockAt or "keep" or "null" (none), buyerMax or "keep" or "null" (no limit)
  Reply: "A"|"R" .. outcome JSON, "X" .. BELOW_RESERVED | REQUEST_REVOKED JSON, or "C" .. stored kind.
]]

-- A field that may be none: the new value, given as ARGV ("keep", "null" or a number).
local function nullable(old, arg)
  if arg == 'keep' then return old end
  if arg == 'null' then return nil end
  return tonumber(arg)
end

-- The SKU's policy with the fields ARGV sets replaced; "keep" leaves one as it is.
local function new_policy(c, backorder_max, low_stock_at, buyer_max)
  local p = { bo = c.bo, ls = nullable(c.ls, low_stock_at), bm = nullable(c.bm, buyer_max) }
  if backorder_max ~= 'keep' then p.bo = tonumber(backorder_max) end
  return p
end

OPS.policy = function(a)
  local d, done, request_id, meta = begin(a, 'policy')
  if done then return done end
  local sku = a[5]
  expire_due(d, { sku })
  local c = counters(d, sku)
  local p = new_policy(c, a[6], a[7], a[8])
  -- A lower allowance must still cover what is reserved beyond on hand.
  if c.on - c.res + p.bo < 0 then
    return reject(d, '{"ok":false,"code":"BELOW_RESERVED","sku":' .. q(sku) .. ',"requested":' .. fmt(p.bo) .. ',"level":' ..
      level_json(sku, c) .. '}')
  end
  own(d)
  step(d, request_id, 'policy', meta, { { sku, 0, 0, policy = p } })
  return apply(d, { sku })
end
