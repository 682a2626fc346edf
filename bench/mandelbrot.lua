-- Mandelbrot point count, the same algorithm as examples/mandelbrot.kl.
local n = tonumber(arg[1]) or 1000
local count = 0
for y = 0, n - 1 do
  local ci = 2.0 * y / n - 1.0
  for x = 0, n - 1 do
    local cr = 2.0 * x / n - 1.5
    local zr, zi = 0.0, 0.0
    local i = 0
    local escaped = false
    while i < 50 do
      local zr2, zi2 = zr * zr, zi * zi
      if zr2 + zi2 > 4.0 then
        escaped = true
        break
      end
      zi = 2.0 * zr * zi + ci
      zr = zr2 - zi2 + cr
      i = i + 1
    end
    if not escaped then count = count + 1 end
  end
end
print(count)
