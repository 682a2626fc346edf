-- fannkuch-redux, the same algorithm and output as fannkuch_redux.kl (arrays are 1-based here,
-- values 0-based as there).
local n = tonumber(arg and arg[1]) or 10
local perm, work, count = {}, {}, {}
for i = 1, n do
  perm[i], work[i], count[i] = i - 1, 0, i - 1
end
local max_flips, checksum, sign = 0, 0, 1
local done = false
while not done do
  local first = perm[1]
  if first ~= 0 then
    for i = 2, n do
      work[i] = perm[i]
    end
    local flips = 1
    local f = first
    while true do
      local nxt = work[f + 1]
      if nxt == 0 then
        break
      end
      work[f + 1] = f
      if f >= 3 then
        local lo, hi = 2, f
        while lo < hi do
          work[lo], work[hi] = work[hi], work[lo]
          lo = lo + 1
          hi = hi - 1
        end
      end
      f = nxt
      flips = flips + 1
    end
    checksum = checksum + sign * flips
    if flips > max_flips then
      max_flips = flips
    end
  end
  if sign == 1 then
    perm[1], perm[2] = perm[2], perm[1]
    sign = -1
  else
    perm[2], perm[3] = perm[3], perm[2]
    sign = 1
    for i = 3, n do
      local c = count[i]
      if c ~= 0 then
        count[i] = c - 1
        break
      end
      if i == n then
        done = true
        break
      end
      count[i] = i - 1
      local t0 = perm[1]
      for j = 1, i do
        perm[j] = perm[j + 1]
      end
      perm[i + 1] = t0
    end
  end
end
print(checksum)
print("Pfannkuchen(" .. n .. ") = " .. max_flips)
