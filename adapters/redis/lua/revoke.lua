--[[
  revoke: closes a request id that was never applied: records a tombstone under it (kind
  "revoke"), and no entry, no level, no seq. Every later operation under the id is refused with
  REQUEST_REVOKED (lib.lua `recorded`), before it reads or writes anything else.
  Composed with: lib.lua, revoke.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: requestId, fingerprint, at, meta JSON or ""
  Reply: "A" .. outcome JSON (entries and levels empty), "R" .. the same (a replay),
         "X" .. REQUEST_APPLIED JSON (the id was applied as another kind), or "C" .. "revoke".
]]
OPS.revoke = function(a)
  local d, done = begin(a, 'revoke')
  if done then return done end
  -- No due expiry is applied: a revoke touches no SKU.
  return apply(d, {})
end
