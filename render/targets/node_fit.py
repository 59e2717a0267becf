"""KubeRay on EKS: every Ray pod must fit the allocatable of the node type it selects, and select nodes only by
labels something sets. A pod that asks for a node's full size, or for a label no node carries, stays Pending
forever: Kubernetes accepts the RayService, KubeRay creates the pods, and nothing ever runs.

Node facts come from clusters/node_types.yaml and the cluster's `nodes` in clusters/clusters.yaml
(render/spec/nodes.py says how allocatable is computed and where each figure comes from).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from pydantic_core import PydanticCustomError

from render.spec.nodes import NodeSettings, NodeType, allocatable, selector_labels
from render.spec.rules import rule_error

if TYPE_CHECKING:
    from render.spec.models import Spec

NODE_TYPES_FILE = "clusters/node_types.yaml"


def node_errors(
    spec: Spec, settings: NodeSettings, node_types: Mapping[str, NodeType]
) -> Iterator[PydanticCustomError]:
    """Every way the spec's Ray pods miss the cluster's nodes, in spec order."""
    head = spec.head_group
    if head.node_type is None:
        yield rule_error(
            "head_group_has_node_type",
            field="head_group.node_type",
            got=None,
            rule="the head pod needs a node type on eks: it is sized against that node's allocatable and selects it",
            hint=f"set head_group.node_type to one of {NODE_TYPES_FILE} (e.g. m6i.xlarge)",
        )
    else:
        yield from _pod_errors(
            "head_group", head.node_type, head.num_cpus, head.memory_gib, 0, head.node_selector, settings, node_types
        )
    for i, group in enumerate(spec.worker_groups):
        yield from _pod_errors(
            f"worker_groups.{i}",
            group.node_type,
            group.num_cpus,
            group.memory_gib,
            group.num_gpus,
            group.node_selector,
            settings,
            node_types,
        )
        node = node_types.get(group.node_type)
        if node is not None and group.accelerator is not None and group.accelerator != node.gpu:
            yield rule_error(
                "accelerator_matches_node_type",
                field=f"worker_groups.{i}.accelerator",
                got=group.accelerator,
                rule=f"a {group.node_type} node has {node.gpu or 'no GPU'}",
                hint=f"set accelerator: {node.gpu}" if node.gpu else "pick a GPU node type",
                related=(f"worker_groups.{i}.node_type",),
            )


def _pod_errors(
    where: str,
    node_type: str,
    cpus: float,
    memory_gib: float,
    gpus: int,
    node_selector: Mapping[str, str],
    settings: NodeSettings,
    node_types: Mapping[str, NodeType],
) -> Iterator[PydanticCustomError]:
    node = node_types.get(node_type)
    if node is None:
        yield rule_error(
            "node_type_is_known",
            field=f"{where}.node_type",
            got=node_type,
            rule=f"the node type is not in {NODE_TYPES_FILE}, so the pod cannot be checked against its allocatable",
            hint=f"add it there (vCPUs, memory, max pods, source) or use one of: {', '.join(sorted(node_types))}",
        )
    else:
        room = allocatable(node, settings)
        fits_cpu = math.ceil(cpus * 1000) <= room.cpu_millicores
        fits_memory = math.ceil(memory_gib * 1024) <= room.memory_mib
        if not (fits_cpu and fits_memory and gpus <= room.gpus):
            largest_cpus = room.cpu_millicores // 1000
            largest_gib = math.floor(room.memory_mib / 1024 * 4) / 4
            yield rule_error(
                "pod_fits_node_allocatable",
                field=f"{where}.{'memory_gib' if fits_cpu and gpus <= room.gpus else 'num_cpus'}",
                got={"num_cpus": cpus, "memory_gib": memory_gib, **({"num_gpus": gpus} if gpus else {})},
                rule=f"the pod does not fit a {node_type} node: its allocatable is {room.describe()} ({node.vcpu}"
                f" vCPUs and {node.memory_gib:g} GiB, less the kubelet's reserve for {node.max_pods} pods, the"
                f" 100 MiB eviction threshold, the hypervisor's share and the DaemonSets' requests), so the pod"
                " would stay Pending",
                hint=f"at most num_cpus: {largest_cpus} and memory_gib: {largest_gib:g} on {node_type},"
                " or a larger node type",
                related=(f"{where}.node_type", f"{where}.num_cpus", f"{where}.memory_gib"),
            )
    known = selector_labels(settings)
    for key, value in sorted(node_selector.items()):
        if key not in known:
            yield rule_error(
                "node_selector_label_is_set",
                field=f"{where}.node_selector",
                got={key: value},
                rule=f"no node carries label {key!r}: the cluster's nodes come from {settings.provisioner}, which sets"
                " only its own and the well-known labels, and clusters.yaml declares no such custom label",
                hint=f"use one of {', '.join(known)}, or declare the label under the cluster's nodes.labels",
            )
        elif key in settings.labels and value not in settings.labels[key]:
            yield rule_error(
                "node_selector_label_is_set",
                field=f"{where}.node_selector",
                got={key: value},
                rule=f"the cluster's nodes carry {key} only as {', '.join(settings.labels[key])}",
                hint="use one of those values, or declare this one under the cluster's nodes.labels",
            )
