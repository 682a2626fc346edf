-- Divisor sieve, the same algorithm and output as divisor_sieve.kl.
local n = tonumber(arg and arg[1]) or 2000000
local count, sum = {}, {}
for k = 1, n do
  count[k], sum[k] = 0, 0
end
for i = 1, n do
  for j = i, n, i do
    count[j] = count[j] + 1
    sum[j] = sum[j] + i
  end
end
local perfect = ""
local abundant = 0
local best = 1
for k = 1, n do
  local proper = sum[k] - k
  if proper == k then
    perfect = perfect .. " " .. k
  end
  if proper > k then
    abundant = abundant + 1
  end
  if count[k] > count[best] then
    best = k
  end
end
print("perfect:" .. perfect)
print("abundant: " .. abundant)
print("most divisors: " .. best .. " has " .. count[best])
