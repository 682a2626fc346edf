-- binary-trees, the same algorithm and output as binary_trees.kl (a node is {left, right}, a
-- leaf an empty table).
local function bottom_up(depth)
  if depth == 0 then
    return {}
  end
  return {bottom_up(depth - 1), bottom_up(depth - 1)}
end

local function check(tree)
  local left = tree[1]
  if left == nil then
    return 1
  end
  return 1 + check(left) + check(tree[2])
end

local n = tonumber(arg and arg[1]) or 16
local min_depth = 4
local max_depth = n
if max_depth < min_depth + 2 then
  max_depth = min_depth + 2
end
local stretch = max_depth + 1
print("stretch tree of depth " .. stretch .. " check: " .. check(bottom_up(stretch)))
local long_lived = bottom_up(max_depth)
for depth = min_depth, max_depth, 2 do
  local iterations = 1
  for _ = 1, max_depth - depth + min_depth do
    iterations = iterations * 2
  end
  local sum = 0
  for _ = 1, iterations do
    sum = sum + check(bottom_up(depth))
  end
  print(iterations .. " trees of depth " .. depth .. " check: " .. sum)
end
print("long lived tree of depth " .. max_depth .. " check: " .. check(long_lived))
