-- Appended to ack.lua for ecs.services.k8s.aws/Service.
-- An ECS Service is synced as soon as AWS accepted it; its tasks start later. Counts come from the PRIMARY
-- deployment: status has no desiredCount, and spec.desiredCount is stale once Application Auto Scaling
-- moves the count.
local function service_health(service)
  local health_status, message = ack_health(service)
  if health_status ~= "Healthy" or service.status.deployments == nil then
    return health_status, message
  end
  for _, deployment in ipairs(service.status.deployments) do
    if deployment.status == "PRIMARY" then
      if deployment.rolloutState == "FAILED" then
        return "Degraded", "Deployment " .. (deployment.id or "") .. " failed: " .. (deployment.rolloutStateReason or "")
      end
      local running = deployment.runningCount or 0
      local desired = deployment.desiredCount or 0
      if running < desired then
        return "Progressing", running .. " of " .. desired .. " tasks running"
      end
    end
  end
  return health_status, message
end

hs.status, hs.message = service_health(obj)
return hs
