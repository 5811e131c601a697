-- Error replies understood by broker/scripts.py: "CODE\tfield\tmessage".
-- fail() raises, so it may be called from nested helpers; scripts validate before their first write.
local function fail(code, message, field)
  error({err = code .. "\t" .. (field or "") .. "\t" .. (message or "")})
end

local function to_int(value, name)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) then
    fail("INTERNAL", "argument " .. name .. " is not an integer: " .. tostring(value))
  end
  return n
end
