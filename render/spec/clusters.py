"""The clusters in clusters/clusters.yaml that environments name as their target."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from render.spec.base import K8sName, StrictModel, unique_names
from render.spec.nodes import NodeSettings
from render.spec.rules import rule_error


class Cluster(StrictModel):
    """A place Argo CD deploys to, or a cloud service a management cluster drives."""

    name: K8sName
    kind: Annotated[
        Literal["eks", "gke", "ecs", "cloudrun"],
        Field(description="eks/gke: Kubernetes clusters; ecs/cloudrun: services driven from a management cluster."),
    ]
    region: Annotated[str, Field(pattern=r"^[a-z]+(-[a-z0-9]+)+$", description="Cloud region, e.g. eu-west-1.")]
    argocd_destination: Annotated[
        str,
        Field(
            min_length=1,
            description="Argo CD destination cluster name (as registered with `argocd cluster add`) that manifests"
            " for this cluster are applied to; for ecs/cloudrun, the management cluster running ACK or"
            " Config Connector.",
        ),
    ]
    account: Annotated[
        str | None, Field(default=None, description="AWS account id or GCP project id, where the kind needs one.")
    ]
    oidc_issuer: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/[0-9A-F]{32}$",
            description="eks only, required: the cluster's OIDC issuer without https:// (`aws eks describe-cluster"
            " --query cluster.identity.oidc.issuer`), which the pods' IAM role trusts (IRSA).",
        ),
    ]

    nodes: Annotated[
        NodeSettings | None,
        Field(
            default=None,
            description="eks only, required: what provisions the nodes and what their DaemonSets request; Ray pods"
            " are sized against the allocatable this leaves and select nodes by the labels it sets.",
        ),
    ]

    @model_validator(mode="after")
    def nodes_only_and_always_on_eks(self) -> Cluster:
        if self.kind == "eks" and self.nodes is None:
            raise rule_error(
                "eks_cluster_has_nodes",
                field="nodes",
                got=None,
                rule="an eks cluster needs `nodes`: Ray pods are sized and placed by what its nodes offer",
                hint="add nodes: {provisioner: managed-node-groups} (or karpenter)",
            )
        if self.kind != "eks" and self.nodes is not None:
            raise rule_error(
                "nodes_only_on_eks",
                field="nodes",
                got=self.nodes.model_dump(),
                rule=f"nodes is for eks clusters, and {self.name} is of kind {self.kind}",
                hint="remove it",
            )
        return self

    @model_validator(mode="after")
    def oidc_issuer_only_and_always_on_eks(self) -> Cluster:
        if self.kind == "eks" and self.oidc_issuer is None:
            raise rule_error(
                "eks_cluster_has_oidc_issuer",
                field="oidc_issuer",
                got=None,
                rule="an eks cluster needs oidc_issuer: the IAM role of its pods trusts it (IRSA)",
                hint=f"aws eks describe-cluster --name {self.name} --query cluster.identity.oidc.issuer"
                " (without https://)",
            )
        if self.kind != "eks" and self.oidc_issuer is not None:
            raise rule_error(
                "oidc_issuer_only_on_eks",
                field="oidc_issuer",
                got=self.oidc_issuer,
                rule=f"oidc_issuer is for eks clusters, and {self.name} is of kind {self.kind}",
                hint="remove it",
            )
        return self


class Clusters(StrictModel):
    """The whole clusters/clusters.yaml file."""

    clusters: Annotated[list[Cluster], Field(min_length=1, description="Every known cluster.")]

    @field_validator("clusters")
    @classmethod
    def unique_cluster_names(cls, value: list[Cluster]) -> list[Cluster]:
        unique_names([c.name for c in value], "cluster")
        return value
