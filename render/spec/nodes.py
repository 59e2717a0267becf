"""Kubernetes nodes as the scheduler sees them: the node table of clusters/node_types.yaml, and what a node leaves
to pods (its allocatable) once the kubelet, the eviction threshold, the hypervisor and the DaemonSets have theirs.

    allocatable(node_types["m6i.xlarge"], cluster.nodes)  # Allocatable(cpu_millicores=3795, memory_mib=14162, gpus=0)

A pod whose requests exceed the allocatable of every node it may land on stays Pending forever; render refuses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from render.spec.base import StrictModel, unique_names
from render.spec.rules import rule_error

# awslabs/amazon-eks-ami nodeadm/internal/kubelet/config.go: the kubelet's evictionHard memory.available, and
# kubeReserved: CPU per core band (getCPUMillicoresToReserve: 6 % of the first core, 1 % of the second, 0.5 % of
# the third and fourth, 0.25 % above) and memory 11 MiB per pod the node may hold plus 255 MiB
# (getMemoryMebibytesToReserve).
EVICTION_HARD_MEMORY_MIB = 100
_CPU_BANDS = ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, math.inf, 25))  # per 10,000
# The kernel and firmware keep part of an instance's memory: a node reports less capacity than its type's
# nominal GiB. Karpenter subtracts 7.5 % for it (aws/karpenter-provider-aws charts/karpenter values.yaml,
# settings.vmMemoryOverheadPercent: 0.075); the same estimate here.
VM_MEMORY_OVERHEAD = 0.075
# What the cluster's node provisioner and the kubelet set on every node, so a nodeSelector may use them.
# kubernetes.io/docs/reference/labels-annotations-taints/ (kubelet and cloud provider labels).
WELL_KNOWN_LABELS = (
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
)
PROVISIONER_LABELS: dict[str, tuple[str, ...]] = {
    # docs.aws.amazon.com/eks/latest/userguide/managed-node-groups.html: "Amazon EKS provided labels are prefixed
    # with eks.amazonaws.com"; they name the group, its capacity type and its AMI. No GPU label: an accelerated AMI
    # labels nothing, so the instance type is what selects the GPU.
    "managed-node-groups": (
        "eks.amazonaws.com/capacityType",
        "eks.amazonaws.com/nodegroup",
        "eks.amazonaws.com/nodegroup-image",
    ),
    # aws/karpenter-provider-aws pkg/apis/v1/labels.go and kubernetes-sigs/karpenter pkg/apis/v1/labels.go.
    "karpenter": (
        "karpenter.sh/capacity-type",
        "karpenter.sh/nodepool",
        "karpenter.k8s.aws/ec2nodeclass",
        "karpenter.k8s.aws/instance-category",
        "karpenter.k8s.aws/instance-cpu",
        "karpenter.k8s.aws/instance-cpu-manufacturer",
        "karpenter.k8s.aws/instance-family",
        "karpenter.k8s.aws/instance-generation",
        "karpenter.k8s.aws/instance-gpu-count",
        "karpenter.k8s.aws/instance-gpu-manufacturer",
        "karpenter.k8s.aws/instance-gpu-memory",
        "karpenter.k8s.aws/instance-gpu-name",
        "karpenter.k8s.aws/instance-hypervisor",
        "karpenter.k8s.aws/instance-memory",
        "karpenter.k8s.aws/instance-size",
        "topology.k8s.aws/zone-id",
    ),
}
# Karpenter labels a node with one GPU model `karpenter.k8s.aws/instance-gpu-name: <model, lower-kebab-case>`
# (aws/karpenter-provider-aws pkg/providers/instancetype/types.go; `l4` on a g6.xlarge).
KARPENTER_GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
Provisioner = Literal["managed-node-groups", "karpenter"]


class NodeType(StrictModel):
    """One EC2 instance type's hardware, as its provider documents it."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$", description="EC2 instance type, e.g. m6i.xlarge.")]
    vcpu: Annotated[int, Field(gt=0, le=1024, description="vCPUs of the instance.")]
    memory_gib: Annotated[float, Field(gt=0, le=32768, description="Nominal memory of the instance, in GiB.")]
    gpus: Annotated[int, Field(default=0, ge=0, le=16, description="Whole GPUs of the instance.")]
    gpu: Annotated[
        str | None, Field(default=None, pattern=r"^nvidia-[a-z0-9-]+$", description="GPU model, e.g. nvidia-l4.")
    ]
    max_pods: Annotated[
        int,
        Field(
            gt=0, le=1024, description="Pods the kubelet admits (EKS: eni-max-pods.txt); sizes the kubelet's reserve."
        ),
    ]
    source: Annotated[str, Field(min_length=1, description="Where these figures come from.")]

    @model_validator(mode="after")
    def gpu_model_iff_gpus(self) -> NodeType:
        if (self.gpu is None) != (self.gpus == 0):
            raise rule_error(
                "gpu_model_iff_gpus",
                field="gpu",
                got=self.gpu,
                rule=f"a node type with gpus={self.gpus} must {'not ' if self.gpus == 0 else ''}name its GPU model",
                hint="set both gpus and gpu, or neither",
                related=("gpus",),
            )
        return self


class NodeTypes(StrictModel):
    """The whole clusters/node_types.yaml file."""

    node_types: Annotated[list[NodeType], Field(min_length=1, description="Every instance type pods may run on.")]

    @field_validator("node_types")
    @classmethod
    def unique_node_type_names(cls, value: list[NodeType]) -> list[NodeType]:
        unique_names([n.name for n in value], "node type")
        return value


class DaemonSetRequests(StrictModel):
    """What the DaemonSets on every node request, summed: the scheduler counts it before any Ray pod."""

    cpu_millicores: Annotated[int, Field(ge=0, le=64_000, description="Summed CPU requests, in millicores.")]
    memory_mib: Annotated[int, Field(ge=0, le=65_536, description="Summed memory requests, in MiB.")]


class NodeSettings(StrictModel):
    """How an EKS cluster's nodes are made and what runs on each before Ray does."""

    provisioner: Annotated[
        Provisioner,
        Field(description="What creates the nodes: EKS managed node groups or Karpenter; decides the node labels."),
    ]
    daemonset_requests: Annotated[
        DaemonSetRequests,
        Field(
            default_factory=lambda: DaemonSetRequests(cpu_millicores=125, memory_mib=0),
            description="Summed requests of the DaemonSets on every node. Default: EKS's default add-ons, aws-node"
            " (25m CPU) and kube-proxy (100m CPU); add your log shipper, node exporter, CSI node plug-ins.",
        ),
    ]
    labels: Annotated[
        dict[str, list[str]],
        Field(
            default_factory=dict,
            description="Labels your node groups or NodePools set themselves, key → the values they take; a"
            " nodeSelector may use these besides the well-known and provisioner labels.",
        ),
    ]


@dataclass(frozen=True)
class Allocatable:
    """What the scheduler lets pods request on one node."""

    cpu_millicores: int
    memory_mib: int
    gpus: int

    def describe(self) -> str:
        """'3.795 CPUs, 13.83 GiB' (and GPUs when there are any)."""
        gpus = f", {self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else ""
        return f"{self.cpu_millicores / 1000:g} CPUs, {self.memory_mib / 1024:.2f} GiB{gpus}"


def kube_reserved_cpu_millicores(vcpu: int) -> int:
    """The kubelet's CPU reserve on a node of `vcpu` cores (amazon-eks-ami getCPUMillicoresToReserve)."""
    total = vcpu * 1000
    return sum(
        int((min(total, end) - start) * per_10k // 10_000) for start, end, per_10k in _CPU_BANDS if total > start
    )


def kube_reserved_memory_mib(max_pods: int) -> int:
    """The kubelet's memory reserve on a node admitting `max_pods` pods (amazon-eks-ami)."""
    return 11 * max_pods + 255


def allocatable(node: NodeType, settings: NodeSettings) -> Allocatable:
    """What one node of this type leaves to the pods scheduled after the DaemonSets."""
    capacity_mib = math.floor(node.memory_gib * 1024 * (1 - VM_MEMORY_OVERHEAD))
    memory = (
        capacity_mib
        - kube_reserved_memory_mib(node.max_pods)
        - EVICTION_HARD_MEMORY_MIB
        - settings.daemonset_requests.memory_mib
    )
    cpu = node.vcpu * 1000 - kube_reserved_cpu_millicores(node.vcpu) - settings.daemonset_requests.cpu_millicores
    return Allocatable(cpu_millicores=cpu, memory_mib=memory, gpus=node.gpus)


def selector_labels(settings: NodeSettings) -> tuple[str, ...]:
    """Every label key a nodeSelector may use on a cluster with these settings, sorted."""
    return tuple(sorted({*WELL_KNOWN_LABELS, *PROVISIONER_LABELS[settings.provisioner], *settings.labels}))


def accelerator_selector(settings: NodeSettings, accelerator: str) -> dict[str, str]:
    """The node label that picks a GPU model, where the provisioner sets one (Karpenter); managed node groups set
    none, so there the instance type alone picks the GPU."""
    if settings.provisioner == "karpenter":
        return {KARPENTER_GPU_NAME: accelerator.removeprefix("nvidia-")}
    return {}
