-- Argo CD health of a KubeRay (v1.7) RayService.

-- A Serve application that failed to deploy or turned unhealthy, on the active cluster or on the pending
-- one of an upgrade, named with its message and those of its unhealthy deployments.
local function failed_applications(service_status, cluster, failures)
  if service_status == nil or service_status.applicationStatuses == nil then
    return
  end
  -- applicationStatuses and serveDeploymentStatuses are JSON maps: pairs, not ipairs.
  for app_name, app in pairs(service_status.applicationStatuses) do
    if app.status == "DEPLOY_FAILED" or app.status == "UNHEALTHY" then
      local details = {}
      if app.message ~= nil and app.message ~= "" then
        table.insert(details, app.message)
      end
      local deployments = {}
      for deployment_name, deployment in pairs(app.serveDeploymentStatuses or {}) do
        if deployment.status == "UNHEALTHY" then
          local line = "deployment " .. deployment_name .. " UNHEALTHY"
          if deployment.message ~= nil and deployment.message ~= "" then
            line = line .. ": " .. deployment.message
          end
          table.insert(deployments, line)
        end
      end
      table.sort(deployments)
      for _, line in ipairs(deployments) do
        table.insert(details, line)
      end
      local failure = "Serve application " .. app_name .. " (" .. cluster .. " cluster) is " .. app.status
      if #details > 0 then
        failure = failure .. ": " .. table.concat(details, "; ")
      end
      table.insert(failures, failure)
    end
  end
end

local function health(rayservice)
  local status = rayservice.status
  if status == nil then
    return "Progressing", "Waiting for RayService status"
  end
  -- A refused spec wins over "not observed yet": KubeRay validates the current spec on every reconcile and, when it
  -- refuses it, sets Ready=False with reason ValidationFailed but leaves observedGeneration behind (only
  -- calculateStatus moves it), so waiting on the generation would wait forever and hold back later sync waves.
  -- InitializingTimeout is terminal too: the RayService must be recreated. (ray-project/kuberay
  -- ray-operator/controllers/ray/rayservice_controller.go, validateRayService and markFailedOnInitializingTimeout;
  -- reasons in ray-operator/apis/ray/v1/rayservice_types.go.)
  local ready = condition(status, "Ready")
  local terminal = ready ~= nil and (ready.reason == "ValidationFailed" or ready.reason == "InitializingTimeout")
  if terminal and ready.status == "False" then
    if ready.reason == "ValidationFailed" then
      return "Degraded", "KubeRay refused the RayService: " .. reason_and_message(ready)
    end
    return "Degraded", reason_and_message(ready)
  end
  local generation = rayservice.metadata.generation
  local observed = status.observedGeneration or 0
  if generation ~= nil and observed < generation then
    return "Progressing", "Waiting for the KubeRay operator to observe generation " .. generation
  end

  local failures = {}
  failed_applications(status.activeServiceStatus, "active", failures)
  failed_applications(status.pendingServiceStatus, "pending", failures)
  if #failures > 0 then
    table.sort(failures)
    return "Degraded", table.concat(failures, " | ")
  end

  local upgrade = condition(status, "UpgradeInProgress")
  if upgrade ~= nil and upgrade.status == "True" then
    return "Progressing", "Upgrade in progress: " .. reason_and_message(upgrade)
  end

  if ready ~= nil and ready.status == "True" then
    return "Healthy", reason_and_message(ready)
  end
  if ready ~= nil and ready.status == "False" then
    if ready.reason == "Initializing" then
      return "Progressing", reason_and_message(ready)
    end
    return "Degraded", reason_and_message(ready)
  end
  return "Progressing", "Waiting for RayService status"
end

hs.status, hs.message = health(obj)
return hs
