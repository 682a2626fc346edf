-- Spectral norm, the same algorithm and output as spectral_norm.kl (arrays are 1-based here,
-- the matrix indices i, j 0-based as there).
local function a(i, j)
  local ij = i + j
  return 1.0 / (ij * (ij + 1) / 2 + i + 1)
end

local function mul_av(n, v, out)
  for i = 0, n - 1 do
    local sum = 0.0
    for j = 0, n - 1 do
      sum = sum + a(i, j) * v[j + 1]
    end
    out[i + 1] = sum
  end
end

local function mul_atv(n, v, out)
  for i = 0, n - 1 do
    local sum = 0.0
    for j = 0, n - 1 do
      sum = sum + a(j, i) * v[j + 1]
    end
    out[i + 1] = sum
  end
end

local function mul_atav(n, v, out, tmp)
  mul_av(n, v, tmp)
  mul_atv(n, tmp, out)
end

local n = tonumber(arg and arg[1]) or 100
local u, v, tmp = {}, {}, {}
for i = 1, n do
  u[i], v[i], tmp[i] = 1.0, 0.0, 0.0
end
for _ = 1, 10 do
  mul_atav(n, u, v, tmp)
  mul_atav(n, v, u, tmp)
end
local vbv, vv = 0.0, 0.0
for i = 1, n do
  vbv = vbv + u[i] * v[i]
  vv = vv + v[i] * v[i]
end
local norm = math.sqrt(vbv / vv)
local scaled = math.floor(norm * 1000000000.0 + 0.5)
print(string.format("%d.%09d", math.floor(scaled / 1000000000), scaled % 1000000000))
