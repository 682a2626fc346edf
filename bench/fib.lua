-- Recursive Fibonacci, the same algorithm and output as examples/fib.kl.
local function fib(n)
  if n < 2 then
    return n
  end
  return fib(n - 1) + fib(n - 2)
end
local n = tonumber(arg[1]) or 27
print("fib(" .. n .. ") = " .. fib(n))
