-- A loop calling small functions, the same algorithm and output as calls.kl.
local function add(a, b)
  return a + b
end

local function square(x)
  return x * x
end

local function clamp(x, lo, hi)
  if x < lo then
    return lo
  end
  if x > hi then
    return hi
  end
  return x
end

local function mix(h, x)
  return (h * 31 + x) % 1000003
end

local function is_odd(x)
  return x % 2 == 1
end

local n = tonumber(arg and arg[1]) or 10000000
local h, odd = 7, 0
for i = 0, n - 1 do
  local v = clamp(square(i % 2000), 1000, 3000000)
  h = mix(h, add(v, i))
  if is_odd(h) then
    odd = odd + 1
  end
end
print("hash " .. h .. ", odd " .. odd)
