--[[
  extend: moves a held reservation's expiry to expiresAt; its holds move with it. It writes no
  entry and changes no level. No request id: running it again only moves the expiry again.
  Composed with: lib.lua, settle.lua, extend.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: reservationId, at, expiresAt
  Reply: "A" .. outcome JSON (no entries, the levels of its SKUs, the reservation with its new
         expiry), or "X" .. RESERVATION_NOT_FOUND | RESERVATION_EXPIRED | RESERVATION_COMMITTED |
         RESERVATION_RELEASED JSON.
]]
OPS.extend = function(a)
  local id = a[1]
  local d = new_draft(tonumber(a[2]))
  local r, rejection = settling(d, id)
  if not r then return reject(d, rejection) end
  if r.state == 'committed' then return reject(d, simple_rejection('RESERVATION_COMMITTED', id)) end
  if r.state == 'released' then return reject(d, simple_rejection('RESERVATION_RELEASED', id)) end
  own(d)
  d.extended = { id = id, expiresAt = tonumber(a[3]) }
  return apply(d, skus_of(r.lines))
end
