-- Collatz, the same algorithm and output as collatz.kl. `x / 2` of an even x is exact, so
-- the chain is the same in Lua 5.4 (where it is a float) and LuaJIT (no `//` there).
local function next(x)
  if x % 2 == 0 then
    return x / 2
  end
  return 3 * x + 1
end

local function chain_length(x)
  local steps = 1
  while x ~= 1 do
    x = next(x)
    steps = steps + 1
  end
  return steps
end

local n = tonumber(arg and arg[1]) or 500000
local best, best_len, total = 1, 1, 0
for i = 1, n - 1 do
  local l = chain_length(i)
  total = total + l
  if l > best_len then
    best, best_len = i, l
  end
end
print("longest chain below " .. n .. ": " .. best .. " (" .. best_len .. " numbers)")
print("total steps: " .. total)
