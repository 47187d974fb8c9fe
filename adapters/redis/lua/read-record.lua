--[[
  read-record: the stored record of a request or of a reservation.
  Composed with: lib.lua, read-record.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: "request" | "reservation", id
  Reply: the record (see lib.lua), a deduct's with its outcome rebuilt (request_outcome), or ""
         when there is none.
]]
OPS.record = function(a)
  if a[1] ~= 'request' then return redis.call('HGET', K_RESERVATIONS, a[2]) or '' end
  local raw = redis.call('HGET', K_REQUESTS, a[2])
  if not raw then return '' end
  local stored = parse_request(raw)
  if string.sub(stored.outcome, 1, 1) ~= '~' then return raw end
  return request_record(stored.kind, fmt(stored.at), stored.fingerprint, request_outcome(a[2], stored))
end
