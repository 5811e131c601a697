-- Error replies understood by broker/store/scripts.py: "CODE\tfield\tmessage".
-- fail() raises, so it may be called from nested helpers; scripts validate before their first write.
local function fail(code, message, field)
  error({err = code .. "\t" .. (field or "") .. "\t" .. (message or "")})
end

-- An integer argument within [min, max] (either bound optional). Lua's tonumber also reads "inf",
-- "nan" and hex; only finite integers that doubles hold exactly pass.
local function to_int(value, name, min, max)
  local n = tonumber(value)
  if n == nil or n % 1 ~= 0 or n > 9007199254740992 or n < -9007199254740992 then -- n % 1: NaN for inf, NaN
    fail("INTERNAL", "argument " .. name .. " is not an integer: " .. tostring(value))
  end
  if (min and n < min) or (max and n > max) then
    fail("INTERNAL", "argument " .. name .. " is out of range: " .. tostring(value))
  end
  return n
end
