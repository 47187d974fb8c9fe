--[[
  settle: what commit, release, extend and amend share: finding the reservation and expiring
  what is due first. No script of its own: scripts/embed-lua.mjs puts it after lib.lua in the
  commit, release, extend, amend and batch scripts. No KEYS or ARGV of its own.
]]

-- The stored reservation after its due holds expired, or a rejection (JSON) and false.
local function settling(d, id)
  local r = reservation(d, id)
  if not r then return nil, '{"ok":false,"code":"RESERVATION_NOT_FOUND","reservationId":' .. q(id) .. '}' end
  expire_due(d, skus_of(r.lines))
  if r.state == 'expired' or (r.state == 'held' and d.at >= r.expiresAt) then
    for _, sku in ipairs(r.holds) do expire_hold(d, r, sku) end
    return nil, '{"ok":false,"code":"RESERVATION_EXPIRED","reservationId":' .. q(id) .. ',"expiresAt":' .. fmt(r.expiresAt) .. '}'
  end
  return r
end

local function simple_rejection(code, id)
  return '{"ok":false,"code":"' .. code .. '","reservationId":' .. q(id) .. '}'
end
