-- fasta, the same algorithm and output as fasta.kl (arrays are 1-based here).
local function next_seed(seed)
  return (seed * 3877 + 29573) % 139968
end

local function cumulative(probs)
  local cum, acc = {}, 0.0
  for i = 1, #probs do
    acc = acc + probs[i]
    cum[i] = acc
  end
  return cum
end

local function make_random(title, syms, probs, count, seed)
  print(title)
  local cum = cumulative(probs)
  local last = #syms
  local line, width = "", 0
  for _ = 1, count do
    seed = next_seed(seed)
    local r = 1.0 * seed / 139968.0
    local k = 1
    while k < last and r >= cum[k] do
      k = k + 1
    end
    line = line .. syms[k]
    width = width + 1
    if width == 60 then
      print(line)
      line, width = "", 0
    end
  end
  if width > 0 then
    print(line)
  end
  return seed
end

local n = tonumber(arg and arg[1]) or 100000
local iub = {"a", "c", "g", "t", "B", "D", "H", "K", "M", "N", "R", "S", "V", "W", "Y"}
local iub_p = {0.27, 0.12, 0.12, 0.27, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02}
local homo = {"a", "c", "g", "t"}
local homo_p = {0.3029549426680, 0.1979883004921, 0.1975473066391, 0.3015094502008}
local seed = 42
seed = make_random(">TWO IUB ambiguity codes", iub, iub_p, 3 * n, seed)
seed = make_random(">THREE Homo sapiens frequency", homo, homo_p, 5 * n, seed)
