--[[
  read-horizon: the highest seq compaction removed: the feed has no gap after it.
  Composed with: lib.lua, read-horizon.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: none
  Reply: the horizon, "0" when nothing was ever compacted.
]]
OPS.horizon = function()
  return redis.call('GET', K_HORIZON) or '0'
end
