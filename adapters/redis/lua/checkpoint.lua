--[[
  checkpoint: naming and reading a SKU's checkpoint (lib.lua's keys 13 and 14). No script of its
  own: scripts/embed-lua.mjs puts it after lib.lua in the compact and verifyFold scripts. No
  KEYS or ARGV of its own.
]]

-- The field of one part of a SKU's checkpoint: tag "c" (its counters, no name), "h" (a
-- reservation's holds, named by its id) or "b" (a buyer's total, named by the buyer). enc() ends
-- the SKU, so the tag byte after it can never be part of a SKU.
local function cp_field(sku, tag, name) return enc(sku) .. tag .. (name or '') end

-- The SKU's checkpoint counters { on, res, ver }: zeros when nothing of it was compacted.
local function cp_counters(sku)
  local v = redis.call('HGET', K_CHECKPOINTS, cp_field(sku, 'c'))
  if not v then return { on = 0, res = 0, ver = 0 } end
  local on, res, ver = string.match(v, '^(%-?%d+),(%-?%d+),(%d+)$')
  if not on then invariant('SKU ' .. q(sku) .. ' has a malformed checkpoint ' .. q(v)) end
  return { on = tonumber(on), res = tonumber(res), ver = tonumber(ver) }
end
