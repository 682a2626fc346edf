-- Word counting, the same algorithm and output as word_count.kl (arrays are 1-based here).
local function next_seed(seed)
  return (seed * 3877 + 29573) % 139968
end

local function merge(src, dst, lo, mid, hi)
  local i, j = lo, mid
  for k = lo, hi - 1 do
    if i < mid and (j >= hi or src[i] <= src[j]) then
      dst[k] = src[i]
      i = i + 1
    else
      dst[k] = src[j]
      j = j + 1
    end
  end
end

-- Sorts words[1..n] bottom-up (runs are [lo, hi) with 1-based lo); returns the sorted array.
local function sort(words, n)
  local src, dst = words, {}
  for k = 1, n do
    dst[k] = ""
  end
  local width = 1
  while width < n do
    local lo = 1
    while lo <= n do
      local mid = lo + width
      if mid > n + 1 then
        mid = n + 1
      end
      local hi = mid + width
      if hi > n + 1 then
        hi = n + 1
      end
      merge(src, dst, lo, mid, hi)
      lo = hi
    end
    src, dst = dst, src
    width = width * 2
  end
  return src
end

local n = tonumber(arg and arg[1]) or 800000
local syllables = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "pe", "da", "qu", "xo", "zen"}
local words = {}
local letters = 0
local seed = 7
for i = 1, n do
  seed = next_seed(seed)
  local parts = 1 + seed % 7 % 3
  local w = ""
  for _ = 1, parts do
    seed = next_seed(seed)
    w = w .. syllables[seed % 13 + 1]
  end
  words[i] = w
  letters = letters + #w
end
local sorted = sort(words, n)
local distinct, best, best_count, run = 0, "", 0, 0
for i = 1, n do
  run = run + 1
  if i == n or sorted[i + 1] ~= sorted[i] then
    distinct = distinct + 1
    if run > best_count then
      best, best_count = sorted[i], run
    end
    run = 0
  end
end
print(n .. " words, " .. letters .. " letters, " .. distinct .. " distinct")
print("most frequent: " .. best .. " x" .. best_count)
print("first: " .. sorted[1] .. ", last: " .. sorted[n])
