"""Validate a Cloud Run Admin API v2 Service body by parsing it into the `google-cloud-run` protos.

Unknown fields and unknown enum values are rejected by the parser; the limits Cloud Run documents in prose
(instance sizes, concurrency, the startup probe's window) are checked on top, as the API would on submit.

    problems = run_service_problems(body)
"""

from __future__ import annotations

from typing import Any

from google.cloud import run_v2
from google.protobuf import json_format

CPU_VALUES = ("1", "2", "4", "8")
# Most memory an instance may have per CPU count, and the least, in MiB (Cloud Run docs: "Configure memory limits").
MEMORY_MAX_MIB = {"1": 4096, "2": 8192, "4": 16384, "8": 32768}
MEMORY_MIN_MIB = {"1": 512, "2": 512, "4": 2048, "8": 4096}
MAX_CONCURRENCY = 1000
STARTUP_WINDOW_S = 240
GPU_MINIMUMS = {"nvidia-l4": ("4", 16384)}


def run_service_problems(body: dict[str, Any]) -> list[str]:
    """Every problem the Cloud Run Admin API v2 would have with `body` as a Service; [] when it is valid."""
    message = run_v2.Service.pb(run_v2.Service())
    try:
        json_format.ParseDict(body, message, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        return [str(error).splitlines()[0]]
    return sorted(_documented_limits(run_v2.Service.wrap(message)))


def memory_mib(quantity: str) -> int:
    """A Kubernetes memory quantity (`512Mi`, `16Gi`) in MiB."""
    if quantity.endswith("Gi"):
        return int(float(quantity[:-2]) * 1024)
    if quantity.endswith("Mi"):
        return int(float(quantity[:-2]))
    raise ValueError(f"not a Mi or Gi quantity: {quantity!r}")


def _documented_limits(service: run_v2.Service) -> list[str]:
    template = service.template
    problems = []
    if not 0 < template.max_instance_request_concurrency <= MAX_CONCURRENCY:
        problems.append(
            f"template.maxInstanceRequestConcurrency: got {template.max_instance_request_concurrency}; "
            f"must be 1 to {MAX_CONCURRENCY}"
        )
    if template.scaling.min_instance_count > template.scaling.max_instance_count:
        problems.append("template.scaling: minInstanceCount is above maxInstanceCount")
    accelerator = template.node_selector.accelerator
    for index, container in enumerate(template.containers):
        where = f"template.containers[{index}]"
        limits = dict(container.resources.limits)
        unknown = sorted(set(limits) - {"cpu", "memory", "nvidia.com/gpu"})
        if unknown:
            problems.append(f"{where}.resources.limits: unknown resources {unknown}")
        cpu, memory = limits.get("cpu"), limits.get("memory")
        if cpu not in CPU_VALUES:
            problems.append(f"{where}.resources.limits.cpu: got {cpu!r}; expected one of {', '.join(CPU_VALUES)}")
        elif memory is None:
            problems.append(f"{where}.resources.limits.memory: missing")
        else:
            mib = memory_mib(memory)
            if not MEMORY_MIN_MIB[cpu] <= mib <= MEMORY_MAX_MIB[cpu]:
                problems.append(
                    f"{where}.resources.limits.memory: got {memory}; with {cpu} CPU it must be "
                    f"{MEMORY_MIN_MIB[cpu]}Mi to {MEMORY_MAX_MIB[cpu]}Mi"
                )
            if accelerator in GPU_MINIMUMS:
                min_cpu, min_mib = GPU_MINIMUMS[accelerator]
                if int(cpu) < int(min_cpu) or mib < min_mib:
                    problems.append(f"{where}.resources.limits: {accelerator} needs {min_cpu} CPU and {min_mib}Mi")
        gpus = limits.get("nvidia.com/gpu")
        if (gpus is not None) != bool(accelerator):
            problems.append(f"{where}.resources.limits: nvidia.com/gpu and template.nodeSelector go together")
        if gpus is not None and gpus != "1":
            problems.append(f"{where}.resources.limits.nvidia.com/gpu: got {gpus!r}; an instance has one GPU")
        if gpus is not None and container.resources.cpu_idle:
            problems.append(f"{where}.resources.cpuIdle: a GPU instance needs CPU always allocated")
        probe = container.startup_probe
        if probe.period_seconds * probe.failure_threshold > STARTUP_WINDOW_S:
            problems.append(
                f"{where}.startupProbe: periodSeconds x failureThreshold is "
                f"{probe.period_seconds * probe.failure_threshold}; at most {STARTUP_WINDOW_S}"
            )
    return problems
