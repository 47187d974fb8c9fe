--[[
  batch: applies several operations in order, each as if it were its own script: each decides
  on what the ones before it wrote, and each has its own reply. One call, one parse and one
  script run for the whole batch.
  Composed with: lib.lua, settle.lua, restock.lua, deduct.lua, adjust.lua, reverse.lua,
  reserve.lua, commit.lua, release.lua, extend.lua, sweep.lua, revoke.lua, policy.lua, amend.lua,
  batch.lua (scripts/embed-lua.mjs).
  KEYS: the ledger's levels key; the others derive from it (lib.lua).
  ARGV: count, then per operation: its script name (restock, deduct, adjust, reverse, reserve,
        commit, release, extend, sweep, revoke, policy, amend), n, and its n ARGV (as in that
        script's header)
  Reply: an array with one reply per operation, in order: as that operation's script replies,
         or for an operation that raised an error
           "E" .. the error, when it failed before its first write: it changed nothing, and
                the batch goes on;
           "H" .. the error, when it failed after it began writing: Lua has no rollback, so it
                is half-applied, and the batch stops there;
           "N" .. why, for every operation after a half-applied one: it did not run.
]]

-- Arguments of one operation copied by one unpack (in C) rather than a loop; far below the
-- Lua stack's limit on values in one call.
local UNPACK_MAX = 4000

-- The text of an error a pcall caught: a Redis error is a table, a Lua runtime error a bare
-- string (a bug here).
local function error_text(e)
  if type(e) == 'table' then return tostring(e.err) end
  return 'STOCK_LEDGER_INVARIANT ' .. tostring(e)
end

-- Runs one operation; its reply, and true when it failed after it began writing.
local function run_one(name, args)
  local before = WRITES.n
  local ok, reply = pcall(OPS[name], args)
  if ok then return reply, false end
  if WRITES.n == before then return 'E' .. error_text(reply), false end
  return 'H' .. 'STOCK_LEDGER_INVARIANT half-applied: ' .. name .. ' failed after it began writing (Lua has no rollback; ' ..
    'run verify()): ' .. error_text(reply), true
end

OPS.batch = function(a)
  local count = tonumber(a[1])
  local replies = {}
  local i = 2
  for k = 1, count do
    local name, n = a[i], tonumber(a[i + 1])
    local args
    if n <= UNPACK_MAX then
      args = { unpack(a, i + 2, i + 1 + n) }
    else
      args = {}
      for j = 1, n do args[j] = a[i + 1 + j] end
    end
    i = i + 2 + n
    local reply, half = run_one(name, args)
    replies[k] = reply
    if half then
      -- What follows would decide on a half-written state: none of it runs.
      local why = 'operation ' .. fmt(k) .. ' of this batch (' .. name .. ') was half-applied and the batch stopped there: ' ..
        'this operation did not run'
      for rest = k + 1, count do replies[rest] = 'N' .. why end
      return replies
    end
  end
  return replies
end
