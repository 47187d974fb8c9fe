--[[
  read-record: the stored record of a request or of a reservation.
  Composed with: lib.lua, read-record.lua (scripts/embed-lua.mjs).
  KEYS: the twelve ledger keys (lib.lua).
  ARGV: "request" | "reservation", id
  Reply: the record (see lib.lua), or "" when there is none.
]]
OPS.record = function(a)
  return redis.call('HGET', a[1] == 'request' and K_REQUESTS or K_RESERVATIONS, a[2]) or ''
end
