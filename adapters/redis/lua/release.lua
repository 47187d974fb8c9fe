--[[
  release: gives a held reservation back: reserved -= qty on every line (and to its buyer, if it
  has one). Idempotent by state.
  Composed with: lib.lua, settle.lua, release.lua (scripts/embed-lua.mjs); also part of batch.
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: reservationId, at
  Reply: "A"|"R" .. outcome JSON, or "X" .. RESERVATION_NOT_FOUND | RESERVATION_EXPIRED |
         RESERVATION_COMMITTED JSON.
]]
OPS.release = function(a)
  local id = a[1]
  local d = new_draft(tonumber(a[2]))
  local r, rejection = settling(d, id)
  if not r then return reject(d, rejection) end
  if r.state == 'committed' then return reject(d, simple_rejection('RESERVATION_COMMITTED', id)) end
  if r.state == 'released' then
    if not r.outcome then invariant('released reservation ' .. q(id) .. ' has no outcome') end
    return replay(d, r.outcome)
  end
  own(d)
  for _, sku in ipairs(r.holds) do end_hold(d, id, sku) end
  local deltas = {}
  for i, l in ipairs(r.lines) do deltas[i] = { l.sku, 0, -l.qty } end
  step(d, id, 'release', r.meta, deltas, r.buyer)
  d.settled = { id = id, state = 'released' }
  return apply(d, skus_of(r.lines))
end
