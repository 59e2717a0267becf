"""Validate AWS API request bodies with botocore's own service models, plus the checks botocore leaves to AWS.

botocore's ParamValidator checks member names, required members, types and minimums; it skips enums, maximums
(of lengths, counts and values) and the limits AWS documents only in prose (health check ranges, Fargate sizes).
Those are checked here, so a body that passes would also pass AWS's own validation of these fields.

    problems = request_problems("ecs", "RegisterTaskDefinition", body)
"""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from botocore.validate import ParamValidator

# Fargate task sizes: CPU units → allowed memory in MiB (AWS ECS developer guide, "Task size").
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
# Container health check ranges in seconds (ECS API reference, HealthCheck); the service model has none.
HEALTH_CHECK_RANGES = {"interval": (5, 300), "timeout": (2, 60), "retries": (1, 10), "startPeriod": (0, 300)}


@cache
def _operation(service: str, operation: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


def request_problems(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """Every problem AWS would have with `params` as the input of `service`.`operation`; [] when valid."""
    shape = _operation(service, operation).input_shape
    assert shape is not None
    problems: list[str] = []
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        problems += [line.strip() for line in report.generate_report().splitlines() if line.strip()]
    problems += _limits(params, shape, "")
    if (service, operation) == ("ecs", "RegisterTaskDefinition"):
        problems += _task_definition_rules(params)
    return sorted(problems)


def _limits(value: Any, shape: Shape, path: str) -> list[str]:
    """Enums and min/max of values, lengths and counts, walking the value along its shape."""
    problems = []
    where = path or "(root)"
    metadata = shape.metadata
    enum = getattr(shape, "enum", None)
    if enum and isinstance(value, str) and value not in enum:
        problems.append(f"{where}: got {value!r}; expected one of {', '.join(enum)}")
    measured = len(value) if isinstance(value, (str, list, dict)) else value
    if isinstance(measured, (int, float)) and not isinstance(measured, bool):
        what = "length" if isinstance(value, (str, list, dict)) else "value"
        if "max" in metadata and measured > metadata["max"]:
            problems.append(f"{where}: {what} {measured} is above the maximum {metadata['max']}")
        if "min" in metadata and measured < metadata["min"]:
            problems.append(f"{where}: {what} {measured} is below the minimum {metadata['min']}")
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                problems += _limits(item, shape.members[key], f"{path}.{key}" if path else key)
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for index, item in enumerate(value):
            problems += _limits(item, shape.member, f"{path}[{index}]")
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            problems += _limits(key, shape.key, f"{path}.<key {key}>")
            problems += _limits(item, shape.value, f"{path}[{key!r}]")
    return problems


def _task_definition_rules(params: dict[str, Any]) -> list[str]:
    problems = []
    for index, container in enumerate(params.get("containerDefinitions", [])):
        for name, value in container.get("healthCheck", {}).items():
            if name in HEALTH_CHECK_RANGES:
                low, high = HEALTH_CHECK_RANGES[name]
                if not low <= value <= high:
                    problems.append(
                        f"containerDefinitions[{index}].healthCheck.{name}: got {value}; must be {low} to {high}"
                    )
    if "FARGATE" in params.get("requiresCompatibilities", []):
        cpu, memory = params.get("cpu"), params.get("memory")
        if not (isinstance(cpu, str) and isinstance(memory, str) and cpu.isdigit() and memory.isdigit()):
            problems.append(
                f"cpu, memory: got {cpu!r}, {memory!r}; Fargate needs both, as strings of CPU units and MiB"
            )
        elif int(memory) not in FARGATE_SIZES.get(int(cpu), ()):
            problems.append(f"cpu, memory: got {cpu}, {memory}; not a Fargate task size (see FARGATE_SIZES)")
        if params.get("networkMode") != "awsvpc":
            problems.append(f"networkMode: got {params.get('networkMode')!r}; Fargate needs 'awsvpc'")
        for index, container in enumerate(params.get("containerDefinitions", [])):
            if any(r.get("type") == "GPU" for r in container.get("resourceRequirements", [])):
                problems.append(f"containerDefinitions[{index}].resourceRequirements: Fargate has no GPUs")
    return problems
