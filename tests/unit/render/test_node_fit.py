"""Ray pods against their nodes: EKS allocatable arithmetic, pods that cannot fit, labels nobody sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from render.spec.load import load_specs
from render.spec.nodes import (
    NodeSettings,
    NodeType,
    allocatable,
    kube_reserved_cpu_millicores,
    kube_reserved_memory_mib,
)
from tests.unit.render.conftest import edit, problems

DEV = "deployments/dev/env.yaml"
PROD = "deployments/prod/env.yaml"
M6I_XLARGE = NodeType(name="m6i.xlarge", vcpu=4, memory_gib=16, max_pods=58, source="test")


@pytest.mark.parametrize(("vcpu", "millicores"), [(1, 60), (2, 70), (4, 80), (8, 90), (16, 110)])
def test_kubelet_cpu_reserve_by_core_band(vcpu: int, millicores: int) -> None:
    # 6 % of the first core, 1 % of the second, 0.5 % of the third and fourth, 0.25 % of each further one.
    assert kube_reserved_cpu_millicores(vcpu) == millicores


def test_m6i_xlarge_allocatable_by_hand() -> None:
    # CPU: 4000 - 80 (kubelet) - 125 (aws-node, kube-proxy) = 3795m.
    # Memory: floor(16384 x 0.925) = 15155 MiB; - (11 x 58 + 255 = 893) - 100 (eviction) - 0 = 14162 MiB.
    assert kube_reserved_memory_mib(58) == 893
    room = allocatable(M6I_XLARGE, NodeSettings(provisioner="managed-node-groups"))
    assert (room.cpu_millicores, room.memory_mib, room.gpus) == (3795, 14162, 0)


def test_daemonsets_count_against_the_node() -> None:
    settings = NodeSettings.model_validate(
        {"provisioner": "karpenter", "daemonset_requests": {"cpu_millicores": 400, "memory_mib": 512}}
    )
    room = allocatable(M6I_XLARGE, settings)
    assert (room.cpu_millicores, room.memory_mib) == (3520, 14162 - 512)


def test_a_worker_the_size_of_its_node_is_refused_with_the_numbers(repo: Path) -> None:
    edit(repo, "deployments/base/env.yaml", lambda d: d["worker_groups"][0].update(num_cpus=4, memory_gib=16))
    found = problems(repo, ["dev"])
    assert found == [
        "deployments/base/env.yaml: worker_groups[cpu].num_cpus: got {'num_cpus': 4, 'memory_gib': 16.0}; the pod does"
        " not fit a m6i.xlarge node: its allocatable is 3.795 CPUs, 13.83 GiB (4 vCPUs and 16 GiB, less the kubelet's"
        " reserve for 58 pods, the 100 MiB eviction threshold, the hypervisor's share and the DaemonSets' requests),"
        " so the pod would stay Pending. Hint: at most num_cpus: 3 and memory_gib: 13.75 on m6i.xlarge, or a larger"
        " node type"
    ]


def test_memory_alone_over_the_allocatable_is_blamed_on_memory(repo: Path) -> None:
    edit(repo, "deployments/base/env.yaml", lambda d: d["worker_groups"][0].update(memory_gib=14))
    [found] = problems(repo, ["dev"])
    assert found.startswith("deployments/base/env.yaml: worker_groups[cpu].memory_gib: got {'num_cpus': 3,")


def test_a_head_too_large_for_its_node_is_refused(repo: Path) -> None:
    edit(repo, DEV, lambda d: d.update(head_group={"num_cpus": 4}))
    [found] = problems(repo, ["dev"])
    assert found.startswith("deployments/dev/env.yaml: head_group.num_cpus: got {'num_cpus': 4.0, 'memory_gib': 8.0};")


def test_eks_head_needs_a_node_type(repo: Path) -> None:
    edit(repo, "deployments/base/env.yaml", lambda d: d.pop("head_group"))
    assert "head_group.node_type: got None; the head pod needs a node type on eks" in problems(repo, ["dev"])[0]


def test_node_type_missing_from_the_table_is_refused(repo: Path) -> None:
    edit(repo, "deployments/base/env.yaml", lambda d: d["worker_groups"][0].update(node_type="m7i.xlarge"))
    [found] = problems(repo, ["dev"])
    assert "worker_groups[cpu].node_type: got 'm7i.xlarge'; the node type is not in clusters/node_types.yaml" in found
    assert "use one of: g6.2xlarge, m6i.2xlarge, m6i.xlarge" in found


def test_a_label_managed_node_groups_never_set_is_refused(repo: Path) -> None:
    # The selector the toolkit used to render for GPUs: neither EKS managed node groups nor Karpenter set it.
    edit(
        repo,
        "deployments/base/env.yaml",
        lambda d: d["worker_groups"][0].update(node_selector={"k8s.amazonaws.com/accelerator": "nvidia-l4"}),
    )
    [found] = problems(repo, ["dev"])
    assert found.startswith(
        "deployments/base/env.yaml: worker_groups[cpu].node_selector: got {'k8s.amazonaws.com/accelerator':"
        " 'nvidia-l4'}; no node carries label 'k8s.amazonaws.com/accelerator': the cluster's nodes come from"
        " managed-node-groups"
    )


def test_provisioner_and_declared_labels_are_accepted(repo: Path) -> None:
    edit(repo, DEV, lambda d: d.update(head_group={"node_selector": {"eks.amazonaws.com/capacityType": "ON_DEMAND"}}))
    edit(repo, PROD, lambda d: d.update(head_group={"node_selector": {"pool": "system", "karpenter.sh/nodepool": "a"}}))
    assert sorted(load_specs(repo)) == ["dev", "prod"]


def test_a_declared_label_with_an_undeclared_value_is_refused(repo: Path) -> None:
    edit(repo, PROD, lambda d: d.update(head_group={"node_selector": {"pool": "gpu"}}))
    [found] = problems(repo, ["prod"])
    assert "head_group.node_selector: got {'pool': 'gpu'}; the cluster's nodes carry pool only as system" in found


def test_accelerator_must_be_the_node_types_gpu(repo: Path) -> None:
    edit(repo, PROD, lambda d: d["worker_groups"][0].update(accelerator="nvidia-a10g"))
    [found] = problems(repo, ["prod"])
    assert "worker_groups[gpu].accelerator: got 'nvidia-a10g'; a g6.2xlarge node has nvidia-l4" in found


def test_eks_cluster_without_nodes_is_refused(repo: Path) -> None:
    edit(repo, "clusters/clusters.yaml", lambda d: d["clusters"][0].pop("nodes"))
    [found] = problems(repo, ["dev"])
    assert found.startswith("clusters/clusters.yaml: clusters[eks-test].nodes: got None; an eks cluster needs `nodes`")


def test_a_node_type_listed_twice_is_refused(repo: Path) -> None:
    edit(repo, "clusters/node_types.yaml", lambda d: d["node_types"].append(dict(d["node_types"][0])))
    [found] = problems(repo, ["dev"])
    assert "node type names must be unique; repeated: m6i.xlarge" in found
