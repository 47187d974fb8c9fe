--[[
  batch: applies several operations in order, each as if it were its own script: each decides
  on what the ones before it wrote, and each has its own reply. One call, one parse and one
  script run for the whole batch.
  KEYS: the ten ledger keys (lib.lua).
  ARGV: count, then per operation: its script name (restock, deduct, adjust, reverse, reserve,
        commit, release, sweep), n, and its n ARGV (as in that script's header)
  Reply: an array with one reply per operation, as that operation's script replies, or
         "E" .. the error of an operation that failed (it wrote nothing: every operation
         decides before it writes).
]]
OPS.batch = function(a)
  local replies = {}
  local i = 2
  for k = 1, tonumber(a[1]) do
    local name, n = a[i], tonumber(a[i + 1])
    local args = {}
    for j = 1, n do args[j] = a[i + 1 + j] end
    i = i + 2 + n
    local ok, reply = pcall(OPS[name], args)
    if ok then
      replies[k] = reply
    else
      -- A Redis error is a table; a Lua runtime error a bare string, which is a bug here.
      replies[k] = 'E' .. (type(reply) == 'table' and tostring(reply.err) or ('STOCK_LEDGER_INVARIANT ' .. tostring(reply)))
    end
  end
  return replies
end
