-- Takeuchi's function, the same algorithm and output as examples/tak.kl.
local function tak(x, y, z)
  if y < x then
    return tak(tak(x - 1, y, z), tak(y - 1, z, x), tak(z - 1, x, y))
  end
  return z
end
local x, y, z = tonumber(arg[1]) or 18, tonumber(arg[2]) or 12, tonumber(arg[3]) or 6
print("tak(" .. x .. ", " .. y .. ", " .. z .. ") = " .. tak(x, y, z))
