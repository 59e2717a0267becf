-- Argo CD health of an AWS Controllers for Kubernetes (ACK) resource: the rules every ACK kind shares,
-- followed by the kind's own lines (a `<group>_<Kind>.lua` here) or, for a kind without one,
-- `hs.status, hs.message = ack_health(obj)`.

-- ACK.Terminal: the spec must change before AWS accepts it. ACK.Recoverable: the last call to AWS failed
-- and is retried; ACK files most AWS rejections (InvalidParameterException, AccessDenied) under it, so
-- Progressing would hide a resource that never converges. Synced once Ready (newer controllers) or
-- ACK.ResourceSynced is True.
local function ack_health(resource)
  local status = resource.status
  local terminal = condition(status, "ACK.Terminal")
  if terminal ~= nil and terminal.status == "True" then
    return "Degraded", "ACK.Terminal: " .. reason_and_message(terminal)
  end
  local recoverable = condition(status, "ACK.Recoverable")
  if recoverable ~= nil and recoverable.status == "True" then
    return "Degraded", "ACK.Recoverable: " .. reason_and_message(recoverable)
  end
  local ready = condition(status, "Ready")
  local synced = condition(status, "ACK.ResourceSynced")
  if ready ~= nil and ready.status == "True" then
    return "Healthy", reason_and_message(ready)
  end
  if synced ~= nil and synced.status == "True" then
    return "Healthy", reason_and_message(synced)
  end
  local pending = synced or ready
  if pending ~= nil and reason_and_message(pending) ~= "" then
    return "Progressing", reason_and_message(pending)
  end
  return "Progressing", "Waiting for the ACK controller to sync the resource with AWS"
end
