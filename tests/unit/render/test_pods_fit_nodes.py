"""Every environment of this repository, as rendered: each Ray pod fits the node it selects and selects it only by
labels the cluster's nodes carry. Reads the rendered RayServices, not the spec, so a renderer bug cannot hide."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from render.pipeline import render_repo
from render.spec.load import load_clusters, load_node_types
from render.spec.nodes import allocatable, selector_labels

ROOT = Path(__file__).parents[3]
_UNITS = {"": 1, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024}


def _mib(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit] / (1024**2 if unit == "" else 1)


def _millicores(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def _ray_pods(files: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    pods = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml") and ".RayService-" in path:
            service = yaml.safe_load(text)
            config = service["spec"]["rayClusterConfig"]
            pods.append((path.split("/")[0], f"{path}: head", config["headGroupSpec"]["template"]["spec"]))
            pods += [
                (path.split("/")[0], f"{path}: {group['groupName']}", group["template"]["spec"])
                for group in config["workerGroupSpecs"]
            ]
    return pods


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return render_repo(ROOT, None).files


def test_every_ray_pod_fits_its_nodes_allocatable(rendered: dict[str, str]) -> None:
    clusters, node_types = load_clusters(ROOT), load_node_types(ROOT)
    envs = {
        env: yaml.safe_load(rendered[f"argocd/argoproj.io.Application-serving-{env}.yaml"])
        for env, *_ in _ray_pods(rendered)
    }
    checked = 0
    for env, where, pod in _ray_pods(rendered):
        destination = envs[env]["spec"]["destination"]["name"]
        cluster = next(c for c in clusters.values() if c.argocd_destination == destination)
        assert cluster.nodes is not None, where
        node = node_types[pod["nodeSelector"]["node.kubernetes.io/instance-type"]]
        room = allocatable(node, cluster.nodes)
        (container,) = pod["containers"]
        requests = container["resources"]["requests"]
        assert _millicores(requests["cpu"]) <= room.cpu_millicores, where
        assert _mib(requests["memory"]) <= room.memory_mib, where
        assert int(requests.get("nvidia.com/gpu", 0)) <= room.gpus, where
        assert set(pod["nodeSelector"]) <= set(selector_labels(cluster.nodes)), where
        checked += 1
    assert checked >= 5  # dev, staging, prod and bench heads, their worker groups
