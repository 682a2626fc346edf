-- Matrix multiply, the same algorithm and output as matmul.kl (arrays are 1-based here, the
-- matrix entries use 0-based i, j as there).
local function fmt9(x)
  local sign = ""
  if x < 0.0 then
    sign = "-"
    x = -x
  end
  local scaled = math.floor(x * 1000000000.0 + 0.5)
  return string.format("%s%d.%09d", sign, math.floor(scaled / 1000000000), scaled % 1000000000)
end

local function make(n, k)
  local tmp = 1.0 / n / n
  local m = {}
  for i = 0, n - 1 do
    local row = {}
    for j = 0, n - 1 do
      row[j + 1] = tmp * (i - k * j) * (i + j)
    end
    m[i + 1] = row
  end
  return m
end

local function transpose(n, m)
  local t = {}
  for i = 1, n do
    local row = {}
    for j = 1, n do
      row[j] = m[j][i]
    end
    t[i] = row
  end
  return t
end

local function mul(n, a, b)
  local bt = transpose(n, b)
  local c = {}
  for i = 1, n do
    local ai = a[i]
    local ci = {}
    for j = 1, n do
      local bj = bt[j]
      local sum = 0.0
      for k = 1, n do
        sum = sum + ai[k] * bj[k]
      end
      ci[j] = sum
    end
    c[i] = ci
  end
  return c
end

local n = tonumber(arg and arg[1]) or 600
local c = mul(n, make(n, 1), make(n, -2))
local trace = 0.0
for i = 1, n do
  trace = trace + c[i][i]
end
local half = math.floor(n / 2) + 1
print(fmt9(c[half][half]))
print(fmt9(trace))
