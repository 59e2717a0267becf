-- Argo CD sets the global `obj`; a health script returns `hs`. Lua 5.1, base and table libraries only: what
-- Argo CD's gopher-lua VM opens (no string library). health_scripts() puts these helpers at the top of every
-- script, as Argo CD takes one self-contained script per kind.
local hs = {}

local function condition(status, condition_type)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == condition_type then
      return c
    end
  end
  return nil
end

local function reason_and_message(c)
  local reason = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    if reason ~= "" then
      return reason .. ": " .. c.message
    end
    return c.message
  end
  return reason
end
